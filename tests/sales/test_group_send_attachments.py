"""Group sends with library attachments against the sandbox: images, files, link and
mini-program cards built as add_msg_template attachments, WeCom's temporary media made
again once it is 3 days old or when WeCom answers 40007 (then the send is retried once),
an item that cannot be had recorded on the send, and another workspace's items refused."""

from datetime import timedelta

import pytest
from marshmallow import ValidationError
from sqlalchemy import select

from core.jobs import Job
from demo.seed import register_tenant
from models import Channel, GroupSend, MaterialUpload, Staff, UploadPurpose
from outreach import materials
from sales.group_send import GroupSendStatus, create_group_send
from tests.factories import make_card, make_channel, make_image, png_bytes, workspace_id
from tests.helpers import WECOM_CREDS, harpoon_of, run_jobs, session_of
from wechat.sandbox import media as sandbox_media
from wechat.sandbox import wecom
from wechat.sandbox.media import TEMPORARY_SECONDS

CONTACT_SECRET = "contact-secret"
pytestmark = pytest.mark.sandbox


@pytest.fixture
def corp(app, platform, live_server):
    """A WeCom corp whose salesperson 张三 has the customer wm_a."""
    channel_id = make_channel(app, "wecom", WECOM_CREDS, secret=CONTACT_SECRET)
    with session_of(app) as session:
        channel = session.get(Channel, channel_id)
        register_tenant(platform.state, channel, live_server)
        wecom.add_staff(platform.state, tenant(platform), "zhangsan", "张三")
        session.add(
            Staff(
                workspace_id=channel.workspace_id,
                channel_id=channel_id,
                userid="zhangsan",
                name="张三",
            )
        )
        session.commit()
    wecom.add_external_contact(
        platform.state, tenant(platform), userid="zhangsan", external_userid="wm_a", name="王总"
    )
    platform.state.wait_for_deliveries()
    while run_jobs(app):
        platform.state.wait_for_deliveries()
    return channel_id


def tenant(platform):
    return platform.state.tenant(WECOM_CREDS.app_id)


def workspace_of(app, channel_id) -> int:
    with session_of(app) as session:
        return session.get(Channel, channel_id).workspace_id


def library(app, workspace_id) -> dict[str, int]:
    """An image, a file, a link card and a mini-program card; their ids by kind."""
    with session_of(app) as session:
        image = make_image(session, workspace_id)
        brochure = materials.save_file(
            session, workspace_id, name="白皮书", filename="白皮书.pdf", data=b"%PDF-1.4 brochure"
        )
        link = make_card(session, workspace_id, "link", image.id, url="https://example.com/t/abc")
        mini = make_card(session, workspace_id, "miniprogram", image.id)
        session.commit()
        return {"image": image.id, "file": brochure.id, "link": link.id, "miniprogram": mini.id}


def send_with(app, channel_id, material_ids) -> int:
    with session_of(app) as session:
        new = create_group_send(
            session,
            workspace_of(app, channel_id),
            channel_id,
            "zhangsan",
            "白皮书和报名链接",
            ["wm_a"],
            None,
            material_ids=material_ids,
        )
        session.commit()
        group_send_id = new.group_send.id
    harpoon_of(app).queue.enqueue(Job.SEND_GROUP_SEND, group_send_id)
    run_jobs(app)
    with session_of(app) as session:
        return session.get(GroupSend, group_send_id)


def sent_attachments(platform, msgid) -> list[dict]:
    with platform.state.lock:
        return wecom.state_of(tenant(platform)).msg_templates[msgid].attachments


def uploads(platform) -> dict:
    with platform.state.lock:
        return dict(sandbox_media.media_of(tenant(platform)).media)


def test_library_items_go_as_attachments_in_their_order(app, platform, corp):
    ids = library(app, workspace_of(app, corp))
    order = [ids["link"], ids["image"], ids["file"], ids["miniprogram"]]
    row = send_with(app, corp, order)

    assert row.status == GroupSendStatus.SENT, row.error
    link, image, brochure, mini = sent_attachments(platform, row.msgid)
    assert link["msgtype"] == "link"
    assert link["link"]["url"] == "https://example.com/t/abc"
    assert link["link"]["picurl"].startswith("https://wework.qpic.cn/")
    held = uploads(platform)
    assert held[image["image"]["media_id"]].type == "image"
    assert held[brochure["file"]["media_id"]].type == "file"
    assert held[brochure["file"]["media_id"]].data == b"%PDF-1.4 brochure"
    assert mini["miniprogram"]["appid"] == "wx1234567890abcdef"
    assert held[mini["miniprogram"]["pic_media_id"]].type == "image"
    # the image and the mini-program's cover are one material: uploaded once
    assert image["image"]["media_id"] == mini["miniprogram"]["pic_media_id"]


def test_media_older_than_its_three_days_is_uploaded_again(app, platform, corp):
    ids = library(app, workspace_of(app, corp))
    first = send_with(app, corp, [ids["image"]])
    [old] = [a["image"]["media_id"] for a in sent_attachments(platform, first.msgid)]

    # three days later on both sides: WeCom forgot the media, Harpoon knows it is old
    platform.state.advance(TEMPORARY_SECONDS + 60)
    with session_of(app) as session:
        for upload in session.scalars(select(MaterialUpload)):
            upload.uploaded_at -= timedelta(days=3)
        session.commit()
    second = send_with(app, corp, [ids["image"]])

    assert second.status == GroupSendStatus.SENT, second.error
    [new] = [a["image"]["media_id"] for a in sent_attachments(platform, second.msgid)]
    assert new != old
    assert len(uploads(platform)) == 2


def test_a_40007_answer_uploads_again_and_sends_once_more(app, platform, corp):
    ids = library(app, workspace_of(app, corp))
    send_with(app, corp, [ids["image"]])
    platform.state.advance(TEMPORARY_SECONDS + 60)  # Harpoon still thinks the media is fresh

    row = send_with(app, corp, [ids["image"]])

    assert row.status == GroupSendStatus.SENT, row.error
    [media_id] = [a["image"]["media_id"] for a in sent_attachments(platform, row.msgid)]
    assert uploads(platform)[media_id].live_at(platform.state.now())
    with platform.state.lock:
        templates = wecom.state_of(tenant(platform)).msg_templates
        assert len(templates) == 2  # the refused call made none
    with session_of(app) as session:
        upload = session.scalar(
            select(MaterialUpload).where(MaterialUpload.purpose == UploadPurpose.WECOM_MEDIA)
        )
        assert upload.media_id == media_id


def test_an_item_wecom_refuses_fails_the_send_with_the_reason(app, platform, corp):
    workspace_id = workspace_of(app, corp)
    with session_of(app) as session:
        # A GIF is an image for the library but WeCom takes only JPEG and PNG images.
        gif = materials.save_image(
            session, workspace_id, name="动图", filename="a.gif", data=gif_bytes()
        )
        session.commit()
        gif_id = gif.id
    row = send_with(app, corp, [gif_id])

    assert row.status == GroupSendStatus.FAILED
    assert row.error == "material_40005"
    with session_of(app) as session:
        material = session.get(materials.Material, gif_id)
        assert "40005" in material.last_error
    with platform.state.lock:
        assert wecom.state_of(tenant(platform)).msg_templates == {}


def gif_bytes() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(out, format="GIF")
    return out.getvalue()


def test_another_workspaces_item_or_more_than_nine_are_refused(app, platform, corp):
    other = workspace_id(app, "globex")
    with session_of(app) as session:
        foreign = make_image(session, other, data=png_bytes(color=(0, 0, 0)))
        session.commit()
        foreign_id = foreign.id
    ids = library(app, workspace_of(app, corp))
    for material_ids, message in (
        ([foreign_id], "Not an item of this workspace's library."),
        ([ids["image"]] * 10, "At most 9 attachments."),
    ):
        with session_of(app) as session, pytest.raises(ValidationError) as refused:
            create_group_send(
                session,
                workspace_of(app, corp),
                corp,
                "zhangsan",
                "你好",
                ["wm_a"],
                None,
                material_ids=material_ids,
            )
        assert refused.value.messages["material_ids"] == [message]
