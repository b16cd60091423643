"""The demo's conference group: its 群活码 and welcome made through Harpoon's own functions,
simulated customers joining through the code (with its state), and a rerun on a fresh
sandbox adding the code and the welcome to WeCom again."""

import fakeredis
import pytest
from sqlalchemy import select

from demo.data import DEMO_GROUP
from demo.seed import (
    CONTACT_STATES,
    STAFF,
    DemoChannels,
    register_tenants,
    seed_demo_group,
    seed_platform,
)
from models import Channel, CustomerGroup, GroupJoinWay, GroupWelcomeTemplate
from tests.factories import make_channel
from tests.helpers import OA_CREDS, WECOM_CREDS, harpoon_of
from wechat.clients import TokenStore, WeChatClients
from wechat.sandbox import wecom, wecom_group_marketing, wecom_groups
from wechat.sandbox.simulator import Simulator

pytestmark = pytest.mark.sandbox


def seed(app, platform, base):
    oa_id = make_channel(app, "oa", OA_CREDS, secret="oa-secret")
    wecom_id = make_channel(app, "wecom", WECOM_CREDS, secret="contact-secret")
    with harpoon_of(app).db.session() as session:
        channels = DemoChannels(session.get(Channel, oa_id), session.get(Channel, wecom_id))
    register_tenants(platform.state, channels, base)
    clients = WeChatClients(platform.url, TokenStore(fakeredis.FakeRedis()))
    tickets = seed_platform(platform.state, clients, channels, harpoon_of(app).db, base)
    client = clients.wecom(channels.wecom.app_id, channels.wecom.secret)
    return channels, tickets, client


def test_demo_customers_join_the_conference_group_through_its_code(app, platform, live_server):
    channels, tickets, client = seed(app, platform, live_server)
    db = harpoon_of(app).db
    config_id = seed_demo_group(db, platform.state, channels.wecom, client)
    corp = platform.state.tenant(WECOM_CREDS.app_id)
    with db.session() as session:
        (way,) = session.scalars(select(GroupJoinWay)).all()
        assert (way.config_id, way.state, way.chat_ids) == (
            config_id,
            "summit2026-venue",
            [DEMO_GROUP["chat_id"]],
        )
        assert way.tag_ids and way.qr_code
        (group,) = session.scalars(select(CustomerGroup)).all()
        assert (group.name, group.owner_userid) == ("2026 数字化峰会交流群", "zhangsan")
        (welcome,) = session.scalars(select(GroupWelcomeTemplate)).all()
    with platform.state.lock:
        assert welcome.template_id in wecom_group_marketing.welcome_templates_of(corp)

    simulator = Simulator(
        platform.state,
        platform.state.tenant(OA_CREDS.app_id),
        corp,
        seed=3,
        population_size=10,
        staff=list(STAFF),
        contact_states=CONTACT_STATES,
        tickets=tickets,
        join_ways=[config_id],
    )
    described = [simulator.step() for _ in range(300)]
    joined = [line for line in described if "joined the customer group" in line]
    assert joined, described
    with platform.state.lock:
        members = wecom_groups.groups_of(corp)[DEMO_GROUP["chat_id"]].members
        by_code = [m for m in members if m.state == "summit2026-venue"]
    assert len(by_code) == len(joined)
    assert all(m.join_scene == wecom_groups.JOINED_BY_QR for m in by_code)

    # A rerun: the sandbox starts empty, the rows stay; the code and welcome come back.
    platform.reset()
    register_tenants(platform.state, channels, live_server)
    for userid, name in STAFF.items():
        wecom.add_staff(platform.state, platform.state.tenant(WECOM_CREDS.app_id), userid, name)
    again = seed_demo_group(db, platform.state, channels.wecom, client)
    assert again != config_id
    corp = platform.state.tenant(WECOM_CREDS.app_id)
    with platform.state.lock:
        assert again in wecom_group_marketing.join_ways_of(corp)
        assert DEMO_GROUP["chat_id"] in wecom_groups.groups_of(corp)
    with db.session() as session:
        assert len(session.scalars(select(GroupJoinWay)).all()) == 1
        (welcome,) = session.scalars(select(GroupWelcomeTemplate)).all()
    with platform.state.lock:
        assert welcome.template_id in wecom_group_marketing.welcome_templates_of(corp)
