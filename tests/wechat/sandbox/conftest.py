"""Fixtures for the sandbox's own tests: a sandbox with one OA and one WeCom corp, the
receiver its callbacks reach, and API tokens for both."""

import pytest

from tests.wechat.sandbox.helpers import (
    AES_KEY,
    AGENT_SECRET,
    CONTACT_SECRET,
    CORP_ID,
    OA_APP_ID,
    OA_SECRET,
    TOKEN,
    Receiver,
)
from wechat.sandbox import create_sandbox
from wechat.sandbox.core import Tenant


@pytest.fixture(scope="session")
def _receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def receiver(_receiver):
    _receiver.received.clear()
    _receiver.fail_next = 0
    return _receiver


@pytest.fixture
def sandbox_app(receiver):
    app = create_sandbox()
    state = app.extensions["sandbox"]
    state.DELIVERY_RETRY_SECONDS = 0.01
    state.add_tenant(
        Tenant(
            "oa", OA_APP_ID, {"app": OA_SECRET}, TOKEN, AES_KEY, callback_url=f"{receiver.url}/oa"
        )
    )
    state.add_tenant(
        Tenant(
            "wecom",
            CORP_ID,
            {"contact": CONTACT_SECRET, "agent": AGENT_SECRET},
            TOKEN,
            AES_KEY,
            callback_url=f"{receiver.url}/wecom",
            agent_id="1000002",
        )
    )
    return app


@pytest.fixture
def sandbox_state(sandbox_app):
    state = sandbox_app.extensions["sandbox"]
    yield state
    state.wait_for_deliveries()  # none may land in the next test's receiver


@pytest.fixture
def api(sandbox_app):
    return sandbox_app.test_client()


@pytest.fixture
def oa_token(api):
    url = f"/oa/cgi-bin/token?grant_type=client_credential&appid={OA_APP_ID}&secret={OA_SECRET}"
    return api.get(url).json["access_token"]


@pytest.fixture
def contact_token(api):
    url = f"/wecom/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={CONTACT_SECRET}"
    return api.get(url).json["access_token"]


@pytest.fixture
def agent_token(api):
    url = f"/wecom/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret={AGENT_SECRET}"
    return api.get(url).json["access_token"]
