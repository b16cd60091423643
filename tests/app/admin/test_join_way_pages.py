"""The 群活码 and group welcome pages against the sandbox, group sends to customer groups
from the group-send form, and the attribution page's 群活码 tab."""

import html
from datetime import timedelta

import pytest
from sqlalchemy import select

from crm.tags import TagBook
from models import GroupJoinWay, GroupSend, GroupWelcomeTemplate, Staff, TagGroup, User, utcnow
from revenue.attribution import attribute_opportunities
from tests.app.admin.helpers import (
    field_errors,
    in_english,
    post_form,
    post_with_token,
)
from tests.factories import (
    add_staff,
    make_account,
    make_card,
    make_contact,
    make_group_member,
    make_image,
    make_interaction,
    make_opportunity,
    make_synced_group,
    workspace_id,
)
from tests.helpers import all_of, audit_actions, run_jobs, session_of
from tests.wecom_platform import connect_corp, corp, fail_next, sync_staff_now
from wechat.sandbox import wecom, wecom_group_marketing, wecom_groups

pytestmark = pytest.mark.sandbox


@pytest.fixture
def channel_id(app, platform):
    channel_id = connect_corp(app, platform)
    add_staff(platform, "zhangsan", "张三")
    add_staff(platform, "lisi", "李四")
    sync_staff_now(app, channel_id)
    return channel_id


def group(app, platform, channel_id, name, owner="zhangsan") -> tuple[int, str]:
    with platform.state.lock:
        made = wecom_groups.create_group(platform.state, corp(platform), owner=owner, name=name)
    return make_synced_group(app, channel_id, made.chat_id, name, owner_userid=owner), (
        made.chat_id
    )


def way_form(chat_ids, **changes):
    return {
        "name": "2026 数字化峰会",
        "state": "summit2026",
        "chat_ids": chat_ids,
        "auto_create_room": "y",
        "room_base_name": "峰会交流群",
        "room_base_id": "2",
        **changes,
    }


def the_way(app) -> GroupJoinWay:
    (way,) = all_of(app, GroupJoinWay)
    return way


def test_a_join_way_is_made_edited_shown_and_deleted(app, platform, signed_in, channel_id):
    group_id, chat_id = group(app, platform, channel_id, "2026 数字化峰会交流群")
    _, second = group(app, platform, channel_id, "峰会交流群 B")
    client = in_english(signed_in("marketer"))
    form = client.get(f"/admin/join-ways/new/{channel_id}").text
    assert "2026 数字化峰会交流群 (1 people)" in form

    with session_of(app) as session:
        tag = TagBook(session, workspace_id(app)).get(session, TagGroup.SOURCE, "2026 峰会")
        session.commit()
        tag_id = tag.id
    made = post_form(
        client, f"/admin/join-ways/new/{channel_id}", way_form([chat_id], tag_ids=[str(tag_id)])
    )
    assert made.status_code == 302, made.text
    way = the_way(app)
    with platform.state.lock:
        remote = wecom_group_marketing.join_ways_of(corp(platform))[way.config_id]
    assert (remote.state, remote.chat_id_list, remote.room_base_id) == ("summit2026", [chat_id], 2)
    assert way.created_by is not None and way.tag_ids == [tag_id]

    now = utcnow()
    make_group_member(app, group_id, "wm1", state="summit2026", joined_at=now)
    make_group_member(app, group_id, "wm2", state="summit2026", joined_at=now - timedelta(days=2))
    page = client.get(f"/admin/join-ways/{way.id}").text
    assert f"/admin/join-ways/{way.id}/qr" in page and "summit2026" in page
    picture = client.get(f"/admin/join-ways/{way.id}/qr")  # WeCom's picture, from our origin
    assert picture.status_code == 200 and picture.mimetype == "image/svg+xml"
    assert picture.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "2026 数字化峰会交流群" in page and "joins-data" in page
    listing = client.get("/admin/join-ways").text
    assert "2026 数字化峰会" in listing and "峰会交流群2 onwards" in listing
    assert "2026 峰会" in listing and "2026 峰会" in page  # its tag

    edited = post_form(
        client,
        f"/admin/join-ways/{way.id}/edit",
        way_form([second, chat_id], name="峰会 2026", tag_ids=[str(tag_id)]),
    )
    assert edited.status_code == 302, edited.text
    with platform.state.lock:
        remote = wecom_group_marketing.join_ways_of(corp(platform))[way.config_id]
    assert (remote.chat_id_list, remote.remark) == ([second, chat_id], "峰会 2026")

    deleted = post_with_token(client, f"/admin/join-ways/{way.id}/delete")
    assert deleted.status_code == 302
    with platform.state.lock:
        assert wecom_group_marketing.join_ways_of(corp(platform)) == {}
    assert the_way(app).deleted_at is not None
    assert audit_actions(app) == ["join_way.create", "join_way.update", "join_way.delete"]


def test_bad_input_and_wecoms_refusals_show_on_the_form(app, platform, signed_in, channel_id):
    _, chat_id = group(app, platform, channel_id, "峰会群")
    client = in_english(signed_in("marketer"))
    path = f"/admin/join-ways/new/{channel_id}"
    page = post_form(client, path, way_form([]))
    assert page.status_code == 200
    assert field_errors(page.text, "chat_ids") == ["Choose at least one group."]
    page = post_form(client, path, way_form(["wrForeign"]))
    assert field_errors(page.text, "chat_ids") == [
        "'wrForeign' is not a valid choice for this field."
    ]
    fail_next(platform, "externalcontact/groupchat/add_join_way", 40050)
    page = post_form(client, path, way_form([chat_id]))
    assert "WeCom refused the change (40050)" in page.text
    assert all_of(app, GroupJoinWay) == []
    assert post_form(client, path, way_form([chat_id])).status_code == 302
    page = post_form(client, path, way_form([chat_id]))
    assert field_errors(page.text, "state") == [
        "Another join code of this channel uses this state."
    ]


def test_another_workspace_cannot_see_or_edit_a_join_way(app, platform, signed_in, channel_id):
    _, chat_id = group(app, platform, channel_id, "峰会群")
    client = signed_in("marketer")
    assert post_form(client, f"/admin/join-ways/new/{channel_id}", way_form([chat_id])).status_code
    way = the_way(app)
    stranger = signed_in("marketer", "globex")
    assert stranger.get(f"/admin/join-ways/{way.id}").status_code == 404
    assert stranger.get(f"/admin/join-ways/{way.id}/edit").status_code == 404
    assert stranger.get(f"/admin/join-ways/new/{channel_id}").status_code == 404
    assert "2026 数字化峰会" not in stranger.get("/admin/join-ways").text


def test_a_group_welcome_is_saved_in_wecoms_library(app, platform, signed_in, channel_id):
    client = in_english(signed_in("marketer"))
    listing = client.get("/admin/group-welcomes").text
    assert "only after the group's owner picks one" in html.unescape(listing)
    path = f"/admin/group-welcomes/new/{channel_id}"
    empty = post_form(client, path, {"name": "峰会欢迎语"})
    assert field_errors(empty.text, "text") == ["Write a message or add a link."]
    half = post_form(client, path, {"name": "x", "link_url": "https://example.com/a"})
    assert field_errors(half.text, "link_title") == ["A link needs both a title and a URL."]
    made = post_form(
        client,
        path,
        {
            "name": "峰会欢迎语",
            "text": "欢迎 %NICKNAME% 加入 2026 数字化峰会交流群！",
            "link_title": "峰会议程",
            "link_url": "https://example.com/agenda",
        },
    )
    assert made.status_code == 302, made.text
    (template,) = all_of(app, GroupWelcomeTemplate)
    with platform.state.lock:
        remote = wecom_group_marketing.welcome_templates_of(corp(platform))[template.template_id]
    assert remote.content["text"] == {"content": "欢迎 %NICKNAME% 加入 2026 数字化峰会交流群！"}
    assert remote.content["link"]["url"] == "https://example.com/agenda"

    edited = post_form(
        client,
        f"/admin/group-welcomes/{template.id}/edit",
        {"name": "峰会欢迎语", "text": "欢迎！", "link_title": "", "link_url": "", "link_desc": ""},
    )
    assert edited.status_code == 302
    with platform.state.lock:
        remote = wecom_group_marketing.welcome_templates_of(corp(platform))[template.template_id]
    assert remote.content == {"text": {"content": "欢迎！"}}
    assert post_with_token(client, f"/admin/group-welcomes/{template.id}/delete").status_code == 302
    with platform.state.lock:
        assert wecom_group_marketing.welcome_templates_of(corp(platform)) == {}
    assert all_of(app, GroupWelcomeTemplate) == []
    assert audit_actions(app) == [
        "group_welcome.create",
        "group_welcome.update",
        "group_welcome.delete",
    ]


def test_a_salesperson_sends_to_their_customer_groups(app, platform, signed_in, channel_id):
    client = in_english(signed_in("sales"))
    with session_of(app) as session:  # the salesperson signs in as 张三
        user = session.scalars(select(User).where(User.email == "sales@acme.example")).one()
        session.scalars(select(Staff).where(Staff.userid == "zhangsan")).one().user_id = user.id
        session.commit()
    _, summit = group(app, platform, channel_id, "2026 数字化峰会交流群")
    group(app, platform, channel_id, "李四的群", owner="lisi")
    page = client.get("/admin/group-sends").text
    assert "The customer groups the sender owns" in page
    sender = next(s for s in all_of(app, Staff) if s.userid == "zhangsan")
    sent = post_with_token(
        client,
        "/admin/group-sends",
        {"sender": str(sender.id), "audience": "groups", "text": "峰会明天 9 点开始"},
    )
    assert sent.status_code == 302, sent.text
    (row,) = all_of(app, GroupSend)
    assert (row.chat_type, row.chat_ids) == ("group", [summit])
    run_jobs(app)
    (row,) = all_of(app, GroupSend)
    wecom.confirm_msg_template(platform.state, corp(platform), row.msgid)
    post_with_token(client, f"/admin/group-sends/{row.id}/refresh")
    run_jobs(app)
    detail = client.get(f"/admin/group-sends/{row.id}").text
    assert "2026 数字化峰会交流群" in detail and 'data-result="1"' in detail
    assert "Customer groups 1" in detail
    assert "1 groups" in client.get("/admin/group-sends").text


def test_a_group_chat_send_carries_library_attachments(app, platform, signed_in, channel_id):
    client = in_english(signed_in("marketer"))
    _, summit = group(app, platform, channel_id, "2026 数字化峰会交流群")
    ws = workspace_id(app)
    with session_of(app) as session:
        cover = make_image(session, ws)
        card = make_card(session, ws, "link", cover.id, url="https://example.com/s")
        session.commit()
        cover_id, card_id = cover.id, card.id
    sender = next(s for s in all_of(app, Staff) if s.userid == "zhangsan")
    sent = post_with_token(
        client,
        "/admin/group-sends",
        {
            "sender": str(sender.id),
            "audience": "groups",
            "text": "峰会资料见附件",
            "attachments": [str(card_id), str(cover_id)],
        },
    )
    assert sent.status_code == 302, sent.text
    (row,) = all_of(app, GroupSend)
    assert (row.chat_type, row.chat_ids, row.material_ids) == (
        "group",
        [summit],
        [card_id, cover_id],
    )
    run_jobs(app)
    (row,) = all_of(app, GroupSend)
    assert row.msgid, row.error
    with platform.state.lock:
        template = wecom.state_of(corp(platform)).msg_templates[row.msgid]
        assert (template.chat_type, template.chat_ids) == ("group", [summit])
        link, image = template.attachments
    assert link["msgtype"] == "link" and link["link"]["url"] == "https://example.com/s"
    assert image["msgtype"] == "image" and image["image"]["media_id"]


def test_schema_refusals_of_a_join_way_read_in_chinese(app, platform, signed_in, channel_id):
    _, chat_id = group(app, platform, channel_id, "峰会群")
    client = signed_in("marketer")  # the workspace's Chinese UI
    path = f"/admin/join-ways/new/{channel_id}"
    page = post_form(client, path, way_form([chat_id], state="summit 2026"))
    assert page.status_code == 200
    assert field_errors(page.text, "state") == ["不能包含空格。"]
    assert all_of(app, GroupJoinWay) == []


def test_the_attribution_page_has_a_join_way_tab(app, platform, signed_in, channel_id):
    _, chat_id = group(app, platform, channel_id, "峰会群")
    client = in_english(signed_in("marketer"))
    post_form(client, f"/admin/join-ways/new/{channel_id}", way_form([chat_id]))
    account = make_account(app, "华信科技")
    cio = make_contact(app, "王总", account_id=account)
    now = utcnow()
    make_interaction(
        app,
        cio,
        "wecom.group_join",
        at=now - timedelta(days=4),
        channel_id=channel_id,
        state="summit2026",
    )
    make_opportunity(app, account, amount="150000", opened_at=now - timedelta(days=1))
    with session_of(app) as session:
        attribute_opportunities(session, workspace_id(app))
    page = client.get("/admin/revenue/attribution?dimension=join_way").text
    assert "Group join codes" in page and "2026 数字化峰会" in page and "150,000" in page
