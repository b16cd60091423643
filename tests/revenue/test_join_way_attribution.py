"""A join through a 群活码 is attributed: the wecom.group_join interaction with the code's
state credits the "join_way" dimension, named after the code."""

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from models import AttributionTouch, utcnow
from revenue.attribution import attribute_opportunities
from revenue.credit import DIMENSIONS, interaction_dimensions
from revenue.influence import influence
from tests.factories import (
    make_account,
    make_channel,
    make_contact,
    make_interaction,
    make_join_way,
    make_opportunity,
    workspace_id,
)
from tests.helpers import WECOM_CREDS, session_of

NOW = utcnow().replace(microsecond=0)


def test_what_a_group_join_counts_for():
    ways = {(2, "summit2026"): 11}
    assert interaction_dimensions(
        "wecom.group_join", {"state": "summit2026", "join_scene": 3}, 2, {}, {}, ways
    ) == [("join_way", "11")]
    # another corp's state, no state, or a 联系我 state on a join: no code of this kind
    for properties, channel in (({"state": "summit2026"}, 3), ({"join_scene": 1}, 2)):
        assert interaction_dimensions("wecom.group_join", properties, channel, {}, {}, ways) == [
            ("other", "wecom.group_join")
        ]
    assert interaction_dimensions(
        "wecom.contact_added", {"state": "summit2026"}, 2, {}, {}, ways
    ) == [("other", "wecom.contact_added")]
    assert DIMENSIONS.index("join_way") == DIMENSIONS.index("contact_way") + 1


def test_a_join_way_add_is_credited_and_named(app):
    channel = make_channel(app, "wecom", WECOM_CREDS, secret="s")
    way = make_join_way(app, channel, ["wrSummit"], name="2026 数字化峰会")
    account = make_account(app, "华信科技")
    cio = make_contact(app, "王总", account_id=account)
    make_interaction(
        app,
        cio,
        "wecom.group_join",
        at=NOW - timedelta(days=6),
        channel_id=channel,
        state="summit2026",
        join_scene=3,
        chat_id="wrSummit",
    )
    make_interaction(app, cio, "wecom.group_join", at=NOW - timedelta(days=5), channel_id=channel)
    opportunity = make_opportunity(app, account, amount="200000", opened_at=NOW - timedelta(days=2))
    ws = workspace_id(app)
    with session_of(app) as session:
        attribute_opportunities(session, ws)
        rows = session.scalars(
            select(AttributionTouch).where(
                AttributionTouch.opportunity_id == opportunity,
                AttributionTouch.dimension == "join_way",
            )
        ).all()
        assert [(r.ref, r.contact_id, r.linear) for r in rows] == [(str(way), cio, 1.0)]
        shown = influence(session, ws, "join_way", "linear")
    assert [(i.name, i.pipeline) for i in shown] == [("2026 数字化峰会", Decimal("200000.00"))]
