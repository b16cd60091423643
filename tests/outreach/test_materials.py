"""The material library against the sandbox: upload validation by magic bytes and size,
OA permanent images and drafts (made again only when the article changed, the old draft
deleted), a push of a library article sending its draft's media_id as mpnews and of a
library image its permanent media_id, a journey's library item as a service message,
and another workspace's items refused."""

import pytest
from marshmallow import ValidationError
from sqlalchemy import select

from journeys import delivery
from models import (
    Channel,
    Material,
    MaterialUpload,
    OutboxItem,
    OutboxStatus,
    PushStatus,
    UploadPurpose,
    UploadStatus,
)
from outreach import materials, pushes
from tests.factories import make_article, make_image, make_push, png_bytes, workspace_id
from tests.helpers import session_of
from tests.oa_platform import client_of, follow, received, settle, tenant
from wechat.sandbox import media as sandbox_media
from wechat.sandbox.oa import CUSTOM, MASS

pytestmark = pytest.mark.sandbox
LIMITS = pushes.PushLimits()


def workspace_of(app, channel_id) -> int:
    with session_of(app) as session:
        return session.get(Channel, channel_id).workspace_id


def drafts(platform) -> dict:
    with platform.state.lock:
        return dict(sandbox_media.media_of(tenant(platform)).drafts)


def article_in(app, channel_id, **values) -> int:
    with session_of(app) as session:
        cover = make_image(session, workspace_of(app, channel_id))
        article = make_article(session, cover.workspace_id, cover.id, **values)
        session.commit()
        return article.id


# --- saving --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GIF", materials.TOO_SMALL),
        (b"not an image at all, whatever its name", materials.NOT_AN_IMAGE),
        (b"\x89PNG\r\n\x1a\n" + b"0" * 64, materials.NOT_AN_IMAGE),  # a PNG's magic, no PNG
        (b"\x89PNG\r\n\x1a\n" + bytes(materials.IMAGE_MAX_BYTES), materials.TOO_BIG_IMAGE),
    ],
    ids=["empty", "text named .png", "broken png", "over 10 MB"],
)
def test_an_image_upload_is_judged_by_its_bytes(app, data, message):
    with session_of(app) as session, pytest.raises(ValidationError) as refused:
        materials.save_image(session, workspace_id(app), name="", filename="a.png", data=data)
    assert refused.value.messages == {"file": [message]}


def test_an_image_keeps_its_bytes_type_and_size(app):
    with session_of(app) as session:
        image = materials.save_image(
            session, workspace_id(app), name="", filename="海报.jpg", data=png_bytes(40, 30)
        )
        session.commit()
        assert (image.name, image.mime, image.width, image.height) == (
            "海报.jpg",
            "image/png",
            40,
            30,
        )
        assert image.data == png_bytes(40, 30)


def test_a_file_is_at_most_20_mb(app):
    with session_of(app) as session, pytest.raises(ValidationError) as refused:
        materials.save_file(
            session,
            workspace_id(app),
            name="大文件",
            filename="big.zip",
            data=bytes(materials.FILE_MAX_BYTES + 1),
        )
    assert refused.value.messages == {"file": [materials.TOO_BIG_FILE]}


def test_an_articles_body_is_escaped_paragraphs(app):
    with session_of(app) as session:
        cover = make_image(session, workspace_id(app))
        article = make_article(
            session, cover.workspace_id, cover.id, body="一 <script>x</script>\n\n二"
        )
        assert article.content_html == "<p>一 &lt;script&gt;x&lt;/script&gt;</p><p>二</p>"


def test_an_article_needs_an_image_of_its_own_workspace_as_cover(app):
    globex, acme = workspace_id(app, "globex"), workspace_id(app)
    with session_of(app) as session:
        foreign = make_image(session, globex)
        mine = make_image(session, acme)
        brochure = materials.save_file(
            session, mine.workspace_id, name="册子", filename="a.pdf", data=b"%PDF-1"
        )
        for cover_id, message in (
            (foreign.id, "Not an item of this workspace's library."),
            (brochure.id, materials.NOT_AN_IMAGE_MATERIAL),
            (None, materials.REQUIRED),
        ):
            with pytest.raises(ValidationError) as refused:
                make_article(session, mine.workspace_id, cover_id)
            assert refused.value.messages == {"cover_id": [message]}


# --- drafts and pushes ----------------------------------------------------------------


def test_a_draft_is_made_again_only_when_the_article_changed(app, platform, oa):
    article_id = article_in(app, oa)
    with session_of(app) as session:
        article, channel = session.get(Material, article_id), session.get(Channel, oa)
        first = materials.ensure_oa_draft(session, article, channel, client_of(app)).media_id
        again = materials.ensure_oa_draft(session, article, channel, client_of(app)).media_id
        assert again == first
        assert list(drafts(platform)) == [first]
        [draft] = drafts(platform)[first].articles
        assert draft["title"] == "ABM 实战：找准采购委员会"
        assert draft["content"] == article.content_html

        materials.save_card(
            session,
            article.workspace_id,
            "article",
            {**_values(article), "title": "ABM 实战（修订）"},
            article,
        )
        session.commit()
        changed = materials.ensure_oa_draft(session, article, channel, client_of(app)).media_id
    assert changed != first
    assert list(drafts(platform)) == [changed]  # the replaced draft is deleted
    assert drafts(platform)[changed].articles[0]["title"] == "ABM 实战（修订）"


def _values(article: Material) -> dict:
    names = ("name", "title", "author", "digest", "body", "url", "cover_id")
    return {name: getattr(article, name) for name in names}


def test_a_push_of_a_library_article_sends_its_drafts_media_id(app, platform, oa):
    ids = follow(app, platform, "o_a", "o_b")
    article_id = article_in(app, oa)
    content = {"type": "news", "material_id": article_id}
    with session_of(app) as session:
        push_id = make_push(app, oa, content=content)
        push = session.get(pushes.Push, push_id)
        pushes.check_push(session, push)
        session.commit()
        assert push.content["title"] == "ABM 实战：找准采购委员会"  # the service card's
        assert push.content["url"] == "https://example.com/abm"

    with session_of(app) as session:
        status = pushes.run_push(
            session, push_id, client_of(app), LIMITS, 10**6, pace=lambda s: None
        )
    settle(app, platform)

    assert status == PushStatus.SENT
    [media_id] = drafts(platform)
    for openid in ids:
        [message] = received(platform, openid, MASS)
        assert (message.msgtype, message.content) == ("mpnews", {"media_id": media_id})
    with session_of(app) as session:
        assert session.get(pushes.Push, push_id).content["media_id"] == media_id
        draft = session.scalar(
            select(MaterialUpload).where(MaterialUpload.purpose == UploadPurpose.OA_DRAFT)
        )
        assert (draft.media_id, draft.status) == (media_id, UploadStatus.OK)


def test_a_push_of_a_library_image_sends_its_permanent_media_id(app, platform, oa):
    follow(app, platform, "o_a", "o_b")
    with session_of(app) as session:
        image = make_image(session, workspace_of(app, oa))
        session.commit()
        image_id = image.id
    push_id = make_push(app, oa, content={"type": "image", "material_id": image_id})
    with session_of(app) as session:
        pushes.run_push(session, push_id, client_of(app), LIMITS, 10**6, pace=lambda s: None)
        upload = session.scalar(select(MaterialUpload))
    [message] = received(platform, "o_a", MASS)
    assert message.content == {"media_id": upload.media_id}
    with platform.state.lock:
        held = sandbox_media.media_of(tenant(platform)).media[upload.media_id]
    assert (held.type, held.temporary, held.data) == ("image", False, png_bytes())


def test_a_library_item_the_platform_refuses_fails_the_push_with_the_reason(app, platform, oa):
    follow(app, platform, "o_a", "o_b")
    article_id = article_in(app, oa)
    platform.state.add_fault(
        sandbox_media_fault("/oa/cgi-bin/material/add_material", errcode=40005)
    )
    push_id = make_push(app, oa, content={"type": "news", "material_id": article_id})
    with session_of(app) as session:
        status = pushes.run_push(
            session, push_id, client_of(app), LIMITS, 10**6, pace=lambda s: None
        )
        push = session.get(pushes.Push, push_id)
        assert status == PushStatus.FAILED
        assert push.error == "material_40005"
        assert push.report["failed"] == {"material_40005": 2}
        cover = session.get(Material, session.get(Material, article_id).cover_id)
        assert "40005" in cover.last_error
    assert received(platform, "o_a", MASS) == []


def sandbox_media_fault(path, errcode):
    from wechat.sandbox.core import Fault

    return Fault(path=path, errcode=errcode)


def test_a_push_naming_another_workspaces_item_is_refused(app, platform, oa):
    globex = workspace_id(app, "globex")
    with session_of(app) as session:
        foreign = make_image(session, globex)
        session.commit()
        foreign_id = foreign.id
    push_id = make_push(app, oa, content={"type": "image", "material_id": foreign_id})
    with session_of(app) as session, pytest.raises(ValidationError) as refused:
        pushes.check_push(session, session.get(pushes.Push, push_id))
    assert refused.value.messages == {
        "content.material_id": ["Not an item of this workspace's library."]
    }


# --- journeys -------------------------------------------------------------------------


def test_a_journeys_library_item_goes_as_a_service_message(app, platform, oa):
    ids = follow(app, platform, "o_a")  # following opens the service window
    article_id = article_in(app, oa)
    workspace = workspace_of(app, oa)
    with session_of(app) as session:
        session.add(
            OutboxItem(
                workspace_id=workspace,
                kind="send_material",
                idempotency_key="journey:1:1:n1:1",
                contact_id=ids["o_a"],
                destination=f"oa:{oa}",
                payload={"channel_id": oa, "openid": "o_a", "material_id": article_id},
            )
        )
        session.commit()
        result = delivery.deliver_due(
            session, workspace, delivery.Platform(oa_client=lambda channel: client_of(app))
        )
        row = session.scalar(select(OutboxItem))
        assert (result.sent, row.status) == (1, OutboxStatus.SENT), row.last_error
    [message] = received(platform, "o_a", CUSTOM)
    assert message.msgtype == "news"
    [card] = message.content["articles"]
    assert card["title"] == "ABM 实战：找准采购委员会"
    assert card["url"] == "https://example.com/abm"
    assert card["picurl"].startswith("https://mmbiz.qpic.cn/")
