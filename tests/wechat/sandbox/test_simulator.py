"""The follower simulator, end to end: its callbacks are accepted and processed by Harpoon."""

from collections import Counter

import fakeredis
import pytest

from app.demo import CONTACT_STATES, STAFF, DemoChannels, register_tenants, seed_platform
from models import Channel
from tests.conftest import OA_CREDS, WECOM_CREDS, harpoon_of, make_channel, run_jobs
from tests.helpers import contacts, inbox, interactions
from tests.wechat.sandbox_server import SandboxServer
from wechat.clients import TokenStore, WeChatClients
from wechat.sandbox import create_sandbox, wecom
from wechat.sandbox.core import Tenant
from wechat.sandbox.simulator import Simulator


@pytest.fixture
def sandbox_server():
    server = SandboxServer()
    yield server
    server.close()


@pytest.fixture
def app(make_app, sandbox_server):
    """Harpoon's own API calls (welcomes, enrichment) go to the sandbox too."""
    return make_app(wechat_api_url=sandbox_server.url)


def test_simulated_traffic_is_accepted_and_processed(app, live_server, sandbox_server):
    oa_id = make_channel(app, "oa", OA_CREDS, secret="oa-secret")
    wecom_id = make_channel(app, "wecom", WECOM_CREDS, secret="contact-secret")
    with harpoon_of(app).db.session() as session:
        channels = DemoChannels(session.get(Channel, oa_id), session.get(Channel, wecom_id))
    state = sandbox_server.state
    register_tenants(state, channels, live_server)
    # The demo's set-up, through Harpoon's own clients: menu, channel QR codes, staff, 联系我.
    clients = WeChatClients(sandbox_server.url, TokenStore(fakeredis.FakeRedis()))
    tickets = seed_platform(state, clients, channels, harpoon_of(app).db)
    simulator = Simulator(
        state,
        state.tenant(OA_CREDS.app_id),
        state.tenant(WECOM_CREDS.app_id),
        seed=3,
        population_size=15,
        staff=list(STAFF),
        contact_states=CONTACT_STATES,
        tickets=tickets,
    )

    described = [simulator.step() for _ in range(150)]
    deliveries = state.wait_for_deliveries(timeout=30)
    assert len(deliveries) == 150
    assert all(d.accepted and d.attempts == 0 for d in deliveries)

    run_jobs(app)
    assert {row.status for row in inbox(app)} == {"done"}
    kinds = Counter(i.kind for i in interactions(app))
    for kind in ("wechat.follow", "wechat.message", "wechat.scan", "wecom.contact_added"):
        assert kinds[kind] > 0, kinds
    assert kinds["wechat.menu_click"] + kinds["wechat.menu_view"] > 0, kinds
    follows = [i for i in interactions(app) if i.kind == "wechat.follow"]
    assert {i.properties.get("scene") for i in follows} & set(tickets)  # QR attribution
    assert sum("added" in line for line in described) == kinds["wecom.contact_added"]
    assert 0 < len(contacts(app)) <= 15 * 2  # each person: one OA contact, maybe one WeCom
    # Adds came through the demo's 联系我 codes, and each got its welcome.
    welcomed = wecom.state_of(state.tenant(WECOM_CREDS.app_id)).welcome_messages
    assert len(welcomed) == kinds["wecom.contact_added"]
    assert all("您好" in message.text["content"] for message in welcomed)


def test_the_same_seed_makes_the_same_story():
    def story(seed):
        state = create_sandbox().extensions["sandbox"]
        oa_tenant = state.add_tenant(Tenant("oa", "wxs", {"app": "s"}, "t", "k" * 43))
        sim = Simulator(state, oa_tenant, None, seed=seed, population_size=10)
        return [sim.step() for _ in range(30)]

    assert story(5) == story(5)
    assert story(5) != story(6)
