"""The follower simulator, end to end: its callbacks are accepted and processed by Harpoon,
and its people read Harpoon's pages and fill its forms as WeChat's browser would."""

import threading
import time
from collections import Counter

import fakeredis
import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from crm.channels import workspace_named
from demo.data import ARTICLE_LINKS, demo_links, seed_demo_content
from demo.seed import CONTACT_STATES, STAFF, DemoChannels, register_tenants, seed_platform
from models import Channel, FollowUpStatus, FormSubmission, PageView
from tests.factories import make_channel
from tests.helpers import OA_CREDS, WECOM_CREDS, contacts, harpoon_of, inbox, interactions, run_jobs
from wechat.clients import TokenStore, WeChatClients
from wechat.sandbox import create_sandbox, simulator, wecom
from wechat.sandbox.core import Tenant
from wechat.sandbox.simulator import Simulator

pytestmark = pytest.mark.sandbox


@pytest.fixture
def sandbox_server(platform):
    """conftest's sandbox (the app's API calls go to it too), emptied for the test."""
    platform.reset()
    return platform


def test_simulated_traffic_is_accepted_and_processed(app, live_server, sandbox_server):
    oa_id = make_channel(app, "oa", OA_CREDS, secret="oa-secret")
    wecom_id = make_channel(app, "wecom", WECOM_CREDS, secret="contact-secret")
    with harpoon_of(app).db.session() as session:
        channels = DemoChannels(session.get(Channel, oa_id), session.get(Channel, wecom_id))
    state = sandbox_server.state
    register_tenants(state, channels, live_server)
    # The demo's set-up, through Harpoon's own clients: menu, channel QR codes, staff, 联系我.
    clients = WeChatClients(sandbox_server.url, TokenStore(fakeredis.FakeRedis()))
    tickets = seed_platform(state, clients, channels, harpoon_of(app).db, live_server)
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


@pytest.fixture
def harpoon(make_app, sandbox_server):
    """Harpoon on a real port whose public address is that port: the sandbox's OAuth sends
    readers back to it, and the links it hands out lead to it."""
    holder = {}
    server = make_server(
        "127.0.0.1", 0, lambda environ, start: holder["app"](environ, start), threaded=True
    )
    base = f"http://127.0.0.1:{server.server_port}"
    holder["app"] = make_app(wechat_api_url=sandbox_server.url, public_base_url=base)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield holder["app"], base
    server.shutdown()
    server.server_close()


@pytest.fixture
def demo_simulator(harpoon, sandbox_server):
    """A factory of simulators on the demo's set-up (content library included); their
    browsers are closed after the test."""
    app, base = harpoon
    made = []

    def make(**options) -> Simulator:
        made.append(simulator_on_demo(app, base, sandbox_server, **options))
        return made[-1]

    yield make
    for sim in made:
        sim.close()


def simulator_on_demo(app, base, sandbox_server, **options) -> Simulator:
    """The demo's set-up on the test workspace, its content library included."""
    oa_id = make_channel(app, "oa", OA_CREDS, secret="oa-secret")
    wecom_id = make_channel(app, "wecom", WECOM_CREDS, secret="contact-secret")
    db = harpoon_of(app).db
    with db.session() as session:
        channels = DemoChannels(session.get(Channel, oa_id), session.get(Channel, wecom_id))
        workspace_id = workspace_named(session, "acme").id
        seed_demo_content(session, workspace_id, oa_id, None)
        links = demo_links(session, workspace_id, base)
    state = sandbox_server.state
    register_tenants(state, channels, base)
    clients = WeChatClients(sandbox_server.url, TokenStore(fakeredis.FakeRedis()))
    tickets = seed_platform(state, clients, channels, db, base)
    return Simulator(
        state,
        state.tenant(OA_CREDS.app_id),
        state.tenant(WECOM_CREDS.app_id),
        staff=list(STAFF),
        contact_states=CONTACT_STATES,
        tickets=tickets,
        harpoon_url=base,
        articles=[links[key] for key in ARTICLE_LINKS],
        **options,
    )


def act_until(app, sim: Simulator, done, timeout: float = 60) -> list[str]:
    """Step the simulation (jobs run as the embedded worker would) until `done(described)`."""
    described = []
    deadline = time.monotonic() + timeout
    while not done(described):
        assert time.monotonic() < deadline, "\n".join(described[-40:])
        described.append(sim.step())
        if len(described) % 10 == 0:
            run_jobs(app)
        time.sleep(0.02)
    return described


def test_simulated_people_read_pages_and_their_reading_is_scored(
    harpoon, sandbox_server, demo_simulator, monkeypatch
):
    app, _ = harpoon
    monkeypatch.setattr(simulator, "SHARE_CHANCE", 1.0)  # every reader shares
    sim = demo_simulator(seed=3, population_size=6, reading_seconds=(6, 8))

    def read_and_shared(described):
        return any(" read it for " in line for line in described) and any(
            " shared: reading " in line for line in described
        )

    described = act_until(app, sim, read_and_shared)
    sandbox_server.state.wait_for_deliveries(timeout=30)
    run_jobs(app)

    assert all("failed" not in line and "refused" not in line for line in described), described
    openids = {p.openid for p in sim.people}
    with harpoon_of(app).db.session() as session:
        views = session.scalars(select(PageView)).all()
    assert views and {v.openid for v in views} <= openids
    assert all(v.contact_id is not None for v in views)
    shared = [v for v in views if v.sharer_openid]
    assert shared and all(v.sharer_openid in openids - {v.openid} for v in shared)
    read = [v for v in views if v.recorded_seconds >= 5]
    assert read
    kinds = Counter(i.kind for i in interactions(app))
    assert kinds["content.view"] == len(views)
    assert kinds["content.read"] == len(read) and kinds["content.share"] > 0
    minutes = sum(i.engagement_minutes for i in interactions(app) if i.kind == "content.read")
    assert minutes == pytest.approx(sum(v.recorded_seconds for v in read) / 60, abs=0.05)
    # A menu's view button is both the VIEW event and a page read.
    assert kinds["wechat.menu_view"] > 0
    assert any(": reading 《" in line and " tapped " in line for line in described)


def test_a_visitor_at_the_expo_fills_the_form_from_the_welcome_and_gets_the_download(
    harpoon, demo_simulator
):
    app, _ = harpoon
    sim = demo_simulator(seed=3, population_size=6)

    def downloaded(described):
        return any(
            " got the download in WeChat: reading 《2026 制造业数字化转型白皮书" in line
            or " opened a link from their chat: reading 《2026 制造业数字化转型白皮书" in line
            for line in described
        )

    described = act_until(app, sim, downloaded)
    run_jobs(app)

    welcomed = [line for line in described if " tapped the link in the welcome: " in line]
    assert any(": filled 《领取白皮书 / 展会报名》" in line for line in welcomed), described
    with harpoon_of(app).db.session() as session:
        submissions = session.scalars(select(FormSubmission)).all()
    people = {p.openid: p for p in sim.people}
    assert submissions
    for submission in submissions:
        person = people[submission.openid]
        assert submission.data["phone"] == person.phone
        assert submission.data["company"] == person.company and submission.consent
        assert submission.contact_id is not None
    assert FollowUpStatus.SENT in {s.followup_status for s in submissions}
    follows = [i for i in interactions(app) if i.kind in ("wechat.follow", "wechat.scan")]
    assert any((i.properties or {}).get("scene") == "expo2026" for i in follows)


def test_a_harpoon_that_does_not_answer_is_told_not_fatal():
    state = create_sandbox().extensions["sandbox"]
    oa_tenant = state.add_tenant(Tenant("oa", "wxs", {"app": "s"}, "t", "k" * 43))
    sim = Simulator(
        state,
        oa_tenant,
        None,
        seed=4,
        population_size=3,
        harpoon_url="http://127.0.0.1:9",
        articles=["http://127.0.0.1:9/t/abcdefgh"],
    )
    described = [sim.step() for _ in range(60)]
    assert any(
        "could not open http://127.0.0.1:9/t/abcdefgh (ConnectionError)" in line
        for line in described
    )
