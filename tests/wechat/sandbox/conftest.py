"""Fixtures for sandbox tests: a sandbox with one OA and one WeCom corp, and a
receiver that verifies and records the callbacks the sandbox delivers; what the tests
add to the sandbox through its state or its API."""

import threading

import pytest
from flask import Flask, request
from wechatpy.crypto import WeChatCrypto
from wechatpy.work.crypto import WeChatCrypto as WeComCrypto
from werkzeug.serving import make_server

from wechat.sandbox import create_sandbox, wecom
from wechat.sandbox.core import Tenant

OA_APP_ID = "wxsandbox00000001"
OA_SECRET = "oa-app-secret"
CORP_ID = "wwsandbox00000001"
CONTACT_SECRET = "contact-secret"
AGENT_SECRET = "agent-secret"
TOKEN = "sandboxtoken"
AES_KEY = "S" * 43


class Receiver:
    """A real HTTP server standing in for Harpoon: decrypts with wechatpy, records the XML."""

    def __init__(self):
        self.received: list[str] = []
        self.fail_next = 0  # answer 500 to this many callbacks first
        app = Flask("receiver")

        @app.before_request
        def fail_on_request():
            if self.fail_next > 0:
                self.fail_next -= 1
                return "busy", 500
            return None

        cryptos = {
            "oa": WeChatCrypto(TOKEN, AES_KEY, OA_APP_ID),
            "wecom": WeComCrypto(TOKEN, AES_KEY, CORP_ID),
        }

        @app.post("/<any(oa, wecom):platform>")
        def callback(platform):
            a = request.args
            xml = cryptos[platform].decrypt_message(
                request.data, a["msg_signature"], a["timestamp"], a["nonce"]
            )
            self.received.append(xml)
            return "success"

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


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


def add_customer(sandbox_state, corp, external_userid, userid="alice", **kwargs):
    """A customer adds the staff member `userid` in WeCom (named after their id)."""
    kwargs.setdefault("name", external_userid.upper())
    return wecom.add_external_contact(
        sandbox_state, corp, userid=userid, external_userid=external_userid, **kwargs
    )


def add_tags(api, token, tags, **group):
    """Corp tags of these names, added through the WeCom API; its answer."""
    payload = {**group, "tag": [{"name": name} for name in tags]}
    return api.post(
        "/wecom/cgi-bin/externalcontact/add_corp_tag",
        query_string={"access_token": token},
        json=payload,
    ).json


def add_template(wx, short_id="TM00015"):
    """A template from the library, added through the OA API; its answer."""
    return wx.post("template/api_add_template", {"template_id_short": short_id})
