"""The follower simulator, end to end: its callbacks are accepted and processed by Harpoon."""

import threading

import pytest
from werkzeug.serving import make_server

from app.channels import callback_url
from models import Channel
from tests.conftest import OA_CREDS, WECOM_CREDS, harpoon_of, make_channel, run_jobs
from tests.helpers import contacts, inbox, interactions
from wechat.sandbox import create_sandbox, wecom
from wechat.sandbox.core import Tenant
from wechat.sandbox.simulator import Simulator


@pytest.fixture
def harpoon_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_simulated_traffic_is_accepted_and_processed(app, harpoon_server):
    oa_id = make_channel(app, "oa", OA_CREDS)
    wecom_id = make_channel(app, "wecom", WECOM_CREDS)
    with harpoon_of(app).db.session() as session:
        oa_channel, wecom_channel = session.get(Channel, oa_id), session.get(Channel, wecom_id)
        oa_url = callback_url(harpoon_server, oa_channel)
        wecom_url = callback_url(harpoon_server, wecom_channel)
    state = create_sandbox().extensions["sandbox"]
    oa_tenant = state.add_tenant(
        Tenant("oa", OA_CREDS.app_id, {"app": "s"}, OA_CREDS.token, OA_CREDS.aes_key, oa_url)
    )
    corp = state.add_tenant(
        Tenant(
            "wecom",
            WECOM_CREDS.app_id,
            {"contact": "c"},
            WECOM_CREDS.token,
            WECOM_CREDS.aes_key,
            wecom_url,
        )
    )
    for userid in ("zhangsan", "lisi"):
        wecom.add_staff(state, corp, userid, userid)
    simulator = Simulator(
        state, oa_tenant, corp, seed=3, population_size=15, staff=["zhangsan", "lisi"]
    )

    described = [simulator.step() for _ in range(120)]
    deliveries = state.wait_for_deliveries(timeout=30)
    assert len(deliveries) == 120
    assert {(d.status, d.answer) for d in deliveries} == {(200, "success")}

    run_jobs(app)
    assert {row.status for row in inbox(app)} <= {"done", "ignored"}
    kinds = {i.kind for i in interactions(app)}
    assert {"wechat.follow", "wechat.message"} <= kinds
    assert any("added" in line for line in described) == ("wecom.contact_added" in kinds)
    assert 0 < len(contacts(app)) <= 15 * 2  # each person: one OA contact, maybe one WeCom


def test_the_same_seed_makes_the_same_story():
    def story(seed):
        state = create_sandbox().extensions["sandbox"]
        oa_tenant = state.add_tenant(Tenant("oa", "wxs", {"app": "s"}, "t", "k" * 43))
        sim = Simulator(state, oa_tenant, None, seed=seed, population_size=10)
        return [sim.step() for _ in range(30)]

    assert story(5) == story(5)
    assert story(5) != story(6)
