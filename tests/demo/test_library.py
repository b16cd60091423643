"""The demo's library: a cover PNG and the ABM article, seeded once, and the scheduled push
of the article to the first demo segment, sent as mpnews through its draft."""

import pytest
from sqlalchemy import select

from demo.data import DEMO_SEGMENTS
from demo.library import COVER_SIZE, seed_demo_library
from models import Channel, Material, Push, PushStatus, SavedSegment
from outreach import pushes
from outreach.segments import Segment, save_segment
from tests.helpers import session_of
from tests.oa_platform import client_of, follow, received, tenant
from wechat.sandbox import media as sandbox_media

pytestmark = pytest.mark.sandbox


def test_the_demo_pushes_its_library_article_through_the_draft(app, platform, oa):
    ids = follow(app, platform, "o_a", "o_b")
    with session_of(app) as session:
        workspace_id = session.get(Channel, oa).workspace_id
        name, description, _ = DEMO_SEGMENTS[0]
        everyone = Segment(channel_ids=(oa,))
        save_segment(session, workspace_id, name, description, everyone.to_document(), None)
        session.commit()
        for _run in range(2):
            seed_demo_library(session, workspace_id, oa, None, {})
        cover, article = session.scalars(select(Material).order_by(Material.id)).all()
        assert (cover.kind, cover.mime, (cover.width, cover.height)) == (
            "image",
            "image/png",
            COVER_SIZE,
        )
        assert (article.kind, article.cover_id) == ("article", cover.id)
        push = session.scalar(select(Push))
        assert push.content["material_id"] == article.id
        assert push.segment_id == session.scalar(select(SavedSegment.id))
        push.scheduled_at = None
        session.commit()
        status = pushes.run_push(
            session, push.id, client_of(app), pushes.PushLimits(), 10**6, pace=lambda s: None
        )
    assert status == PushStatus.SENT
    with platform.state.lock:
        [draft_id] = sandbox_media.media_of(tenant(platform)).drafts
    for openid in ids:
        [message] = received(platform, openid)
        assert (message.msgtype, message.content) == ("mpnews", {"media_id": draft_id})
