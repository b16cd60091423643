"""A journey's "send a library item": the runner decides (an outbox row for a follower, no
platform call), the sender uploads the item's images to the OA before claiming and sends
the card as a customer-service message; the step is done, or failed with the platform's
reason when the OA refuses the image."""

import pytest
from sqlalchemy import select

from journeys import delivery, reactions, runner
from journeys.delivery import Platform
from journeys.reactions import Touch
from models import (
    Channel,
    Interaction,
    Journey,
    JourneyStatus,
    JourneyVersion,
    MaterialUpload,
    OutboxItem,
    OutboxStatus,
    Step,
    utcnow,
)
from tests.factories import make_article, make_image
from tests.helpers import session_of
from tests.oa_platform import client_of, follow, received
from wechat.sandbox.core import Fault
from wechat.sandbox.oa import CUSTOM

pytestmark = pytest.mark.sandbox


def live_journey(app, workspace_id: int, material_id: int) -> None:
    """A follow enters it; it sends the library item."""
    nodes = [
        {
            "id": "start",
            "type": "entry",
            "trigger": {"kind": "interaction", "event": {"kind": "wechat.follow"}},
            "next": "send",
        },
        {
            "id": "send",
            "type": "action",
            "action": {"kind": "send_material", "material_id": material_id},
        },
    ]
    with session_of(app) as session:
        row = Journey(
            workspace_id=workspace_id, name="资料", status=JourneyStatus.LIVE, live_version=1
        )
        session.add(row)
        session.flush()
        document = {"reentry": "always", "nodes": nodes}
        session.add(JourneyVersion(journey_id=row.id, version=1, document=document))
        session.commit()


def follows_and_walks(app, workspace_id: int, contact_id: int) -> None:
    at = utcnow()
    with session_of(app) as session:
        row = Interaction(
            workspace_id=workspace_id, contact_id=contact_id, kind="wechat.follow", occurred_at=at
        )
        session.add(row)
        session.flush()
        touch = Touch(row.id, contact_id, None, "wechat.follow", {}, at)
        reactions.on_interactions(session, workspace_id, [touch], now=at)
        session.commit()
        runner.run_due(session, workspace_id, now=lambda: at)


def deliver(app, workspace_id: int) -> delivery.DeliveryResult:
    platform = Platform(oa_client=lambda channel: client_of(app))
    with session_of(app) as session:
        return delivery.deliver_due(session, workspace_id, platform)


def article_of(app, workspace_id: int) -> int:
    with session_of(app) as session:
        cover = make_image(session, workspace_id)
        article = make_article(session, workspace_id, cover.id)
        session.commit()
        return article.id


@pytest.fixture
def follower(app, platform, oa):
    ids = follow(app, platform, "o_fang")
    with session_of(app) as session:
        workspace_id = session.get(Channel, oa).workspace_id
    return workspace_id, ids["o_fang"]


def test_the_follower_gets_the_article_as_a_card(app, platform, follower):
    workspace_id, contact_id = follower
    live_journey(app, workspace_id, article_of(app, workspace_id))
    follows_and_walks(app, workspace_id, contact_id)
    with session_of(app) as session:
        assert session.scalar(select(MaterialUpload)) is None  # the runner called nobody

    assert deliver(app, workspace_id).sent == 1

    [message] = received(platform, "o_fang", CUSTOM)
    assert message.msgtype == "news"
    assert message.content["articles"][0]["title"] == "ABM 实战：找准采购委员会"
    with session_of(app) as session:
        row = session.scalar(select(OutboxItem))
        step = session.get(Step, row.step_id)
        assert (row.status, step.outcome) == (OutboxStatus.SENT, "done")


def test_an_image_the_oa_refuses_fails_the_step_with_the_reason(app, platform, follower):
    workspace_id, contact_id = follower
    live_journey(app, workspace_id, article_of(app, workspace_id))
    follows_and_walks(app, workspace_id, contact_id)
    platform.state.add_fault(Fault("/oa/cgi-bin/material/add_material", errcode=40009))

    assert deliver(app, workspace_id).failed == 1

    assert received(platform, "o_fang", CUSTOM) == []
    with session_of(app) as session:
        row = session.scalar(select(OutboxItem))
        step = session.get(Step, row.step_id)
        assert row.status == OutboxStatus.FAILED
        assert row.last_error.startswith("material_failed")
        assert step.outcome == "failed"
