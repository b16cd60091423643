"""Group sends page: the form and its errors, sales limited to their own staff member, the
send job queued, the detail page with each recipient's result, and refreshing results."""

import html
import re
from dataclasses import dataclass

import pytest
from marshmallow import ValidationError as SchemaError
from sqlalchemy import select

from app.admin.labels import translated_messages
from core.jobs import Job
from core.text import Formatted
from crm.channels import workspace_named
from crm.tags import TagBook
from models import (
    AuditLog,
    Channel,
    Contact,
    ContactTag,
    FollowRelation,
    GroupSend,
    Staff,
    TagSource,
    User,
    utcnow,
)
from sales.group_send import MONTHLY_LIMIT, NOT_SENT, SENT, GroupChatSendSchema, GroupSendStatus
from sales.join_ways import NOT_THE_CORPS_GROUPS, JoinWayInput
from tests.app.admin.helpers import csrf_token, field_errors, in_english
from tests.factories import add_group_send
from tests.helpers import all_of, harpoon_of, queued_jobs

PAGE = "/admin/group-sends"
TEXT = "本周五下午两点，华东区 CIO 闭门会，欢迎报名。"


@dataclass
class Corp:
    channel_id: int
    zhangsan: int  # Staff ids
    lisi: int
    retired: int
    cloud_tag: int
    unused_tag: int
    contacts: dict  # external_userid -> contact id


@pytest.fixture
def corp(app, wecom_channel):
    """张三 has 王芳 (tagged cloud), 李娜, and 赵敏 who left (tagged cloud); 李四 has 陈晨
    (tagged cloud); 王五 no longer has the customer-contact permission."""
    with harpoon_of(app).db.session() as session:
        ws = session.get(Channel, wecom_channel).workspace_id
        staff = {}
        for userid, name, active in (
            ("zhangsan", "张三", True),
            ("lisi", "李四", True),
            ("wangwu", "王五", False),
        ):
            staff[userid] = Staff(
                workspace_id=ws, channel_id=wecom_channel, userid=userid, name=name, active=active
            )
            session.add(staff[userid])
        book = TagBook(session, ws)
        cloud, unused = book.get(session, "interest", "云迁移"), book.get(session, "interest", "AI")
        contacts = {}
        for external_userid, name, staff_userid, left, tagged in (
            ("wm_a", "王芳", "zhangsan", False, True),
            ("wm_b", "李娜", "zhangsan", False, False),
            ("wm_c", "赵敏", "zhangsan", True, True),
            ("wm_d", "陈晨", "lisi", False, True),
        ):
            contact = Contact(workspace_id=ws, name=name)
            session.add(contact)
            session.flush()
            contacts[external_userid] = contact.id
            session.add(
                FollowRelation(
                    workspace_id=ws,
                    channel_id=wecom_channel,
                    contact_id=contact.id,
                    external_userid=external_userid,
                    staff_userid=staff_userid,
                    added_at=utcnow(),
                    removed_at=utcnow() if left else None,
                )
            )
            if tagged:
                session.add(
                    ContactTag(
                        workspace_id=ws,
                        contact_id=contact.id,
                        tag_id=cloud.id,
                        source=TagSource.MANUAL,
                    )
                )
        session.commit()
        return Corp(
            wecom_channel,
            staff["zhangsan"].id,
            staff["lisi"].id,
            staff["wangwu"].id,
            cloud.id,
            unused.id,
            contacts,
        )


def link_staff(app, staff_id, email):
    with harpoon_of(app).db.session() as session:
        user_id = session.scalar(select(User.id).where(User.email == email))
        session.get(Staff, staff_id).user_id = user_id
        session.commit()


def submit(client, **fields):
    data = {"sender": "", "audience": "all", "tag": "", "text": TEXT, **fields}
    token = csrf_token(client.get(PAGE).text)
    return client.post(PAGE, data={**data, "csrf_token": token})


def sender_options(page: str) -> list[str]:
    select_html = re.search(r'<select[^>]*name="sender".*?</select>', page, re.S).group(0)
    return [html.unescape(o) for o in re.findall(r"<option [^>]*>([^<]+)</option>", select_html)]


def test_a_marketer_sends_to_the_senders_customers_with_a_tag(app, signed_in, corp):
    client = in_english(signed_in("marketer"))
    page = client.get(PAGE).text
    assert sender_options(page) == ["Choose the sender", "张三 (zhangsan)", "李四 (lisi)"]

    response = submit(client, sender=corp.zhangsan, audience="tag", tag=corp.cloud_tag)
    assert response.status_code == 302
    [group_send] = all_of(app, GroupSend)
    assert response.location.endswith(f"{PAGE}/{group_send.id}")
    # 赵敏 left 张三 and 陈晨 is 李四's: only 王芳 gets it.
    assert (group_send.staff_userid, group_send.external_userids, group_send.status) == (
        "zhangsan",
        ["wm_a"],
        GroupSendStatus.QUEUED,
    )
    assert group_send.text == TEXT and group_send.created_by is not None
    assert queued_jobs(app) == [(Job.SEND_GROUP_SEND, (group_send.id,))]
    [log] = all_of(app, AuditLog)
    assert (log.action, log.changes["recipients"], log.changes["tag_id"]) == (
        "group_send.create",
        1,
        corp.cloud_tag,
    )

    detail = client.get(response.location).text
    assert "The message goes to 1 customer once 张三 confirms it in WeCom." in detail
    assert f'href="/admin/contacts/{corp.contacts["wm_a"]}">王芳</a>' in detail
    assert "No result yet" in detail and "Refresh results" not in detail  # no msgid yet


def test_all_of_the_senders_customers(app, signed_in, corp):
    client = signed_in("admin")
    assert submit(client, sender=corp.zhangsan).status_code == 302
    [group_send] = all_of(app, GroupSend)
    assert group_send.external_userids == ["wm_a", "wm_b"]


@pytest.mark.parametrize(
    ("fields", "name", "error"),
    [
        ({"text": "  "}, "text", "This field is required."),
        ({"text": "字" * 2001}, "text", "At most 2000 characters."),
        ({"sender": ""}, "sender", "Choose who sends it."),
        ({"audience": "tag"}, "tag", "Choose the tag."),
        ({"audience": "tag", "tag": "unused"}, "audience", "None of the sender's customers match."),
    ],
)
def test_form_errors_show_by_the_field_and_send_nothing(app, signed_in, corp, fields, name, error):
    client = in_english(signed_in("marketer"))
    if fields.get("tag") == "unused":
        fields["tag"] = corp.unused_tag
    response = submit(client, **{"sender": corp.zhangsan, **fields})
    assert response.status_code == 400
    assert error in field_errors(response.text, name)
    assert all_of(app, GroupSend) == [] and queued_jobs(app) == []


def test_a_retired_staff_member_is_not_offered(app, signed_in, corp):
    client = in_english(signed_in("marketer"))
    response = submit(client, sender=corp.retired)
    assert response.status_code == 400
    assert field_errors(response.text, "sender") == ["Not a valid choice."]


def test_sales_send_only_as_their_own_staff_member(app, signed_in, corp):
    client = in_english(signed_in("sales"))
    assert "not linked to a WeCom staff member" in client.get(PAGE).text
    link_staff(app, corp.zhangsan, "sales@acme.example")
    assert sender_options(client.get(PAGE).text) == ["Choose the sender", "张三 (zhangsan)"]

    response = submit(client, sender=corp.lisi)
    assert response.status_code == 400
    assert field_errors(response.text, "sender") == ["Not a valid choice."]
    assert all_of(app, GroupSend) == []
    assert submit(client, sender=corp.zhangsan).status_code == 302
    [group_send] = all_of(app, GroupSend)
    assert group_send.staff_userid == "zhangsan"


def test_a_viewer_sees_the_list_but_may_not_send_or_refresh(app, signed_in, corp):
    group_send_id = add_group_send(
        app, corp.channel_id, external_userids=["wm_a"], msgid="msg_1", status=GroupSendStatus.SENT
    )
    client = signed_in("viewer")
    page = client.get(PAGE)
    assert page.status_code == 200 and f'id="group-send-{group_send_id}"' in page.text
    assert 'name="sender"' not in page.text
    token = csrf_token(page.text)
    assert client.post(PAGE, data={"csrf_token": token, "text": TEXT}).status_code == 403
    refresh = f"{PAGE}/{group_send_id}/refresh"
    assert client.post(refresh, data={"csrf_token": token}).status_code == 403
    assert "Refresh results" not in client.get(f"{PAGE}/{group_send_id}").text


def test_the_detail_page_shows_each_recipients_result(app, signed_in, corp):
    group_send_id = add_group_send(
        app,
        corp.channel_id,
        external_userids=["wm_a", "wm_b", "wm_x"],
        fail_list=["wm_x"],
        msgid="msg_1",
        results={"wm_a": SENT, "wm_b": MONTHLY_LIMIT},
        results_at=utcnow(),
        status=GroupSendStatus.CONFIRMED,
    )
    waiting_id = add_group_send(
        app,
        corp.channel_id,
        external_userids=["wm_a"],
        msgid="msg_2",
        results={"wm_a": NOT_SENT},
        status=GroupSendStatus.SENT,
    )
    client = in_english(signed_in("marketer"))
    listed = client.get(PAGE).text
    row = re.search(rf'<tr id="group-send-{group_send_id}".*?</tr>', listed, re.S).group(0)
    assert 'data-status="confirmed"' in row and "Confirmed" in row
    counts = dict(re.findall(r'data-count="(\w+)">(\d+)<', row))
    assert counts == {"sent": "1", "not_a_friend": "0", "limit": "1"}
    waiting_row = re.search(rf'<tr id="group-send-{waiting_id}".*?</tr>', listed, re.S).group(0)
    assert "Waiting for the sender to confirm" in waiting_row

    detail = client.get(f"{PAGE}/{group_send_id}").text
    results = dict(re.findall(r'data-recipient="(\w+)">.*?data-result="(\w*)"', detail, re.S))
    assert results == {"wm_a": "1", "wm_b": "3", "wm_x": "refused"}
    assert "Monthly limit reached" in detail and "Refused by WeCom" in detail
    assert f'href="/admin/contacts/{corp.contacts["wm_b"]}">李娜</a>' in detail
    assert "Refresh results" in detail


def test_refresh_queues_the_results_job(app, signed_in, corp):
    sent = add_group_send(
        app, corp.channel_id, external_userids=["wm_a"], msgid="msg_1", status=GroupSendStatus.SENT
    )
    queued = add_group_send(app, corp.channel_id, external_userids=["wm_a"])
    client = in_english(signed_in("sales"))
    token = csrf_token(client.get(PAGE).text)
    response = client.post(f"{PAGE}/{sent}/refresh", data={"csrf_token": token})
    assert response.status_code == 302 and response.location.endswith(f"{PAGE}/{sent}")
    assert queued_jobs(app) == [(Job.FETCH_GROUP_SEND_RESULTS, (sent,))]
    client.post(f"{PAGE}/{queued}/refresh", data={"csrf_token": token})
    assert "WeCom does not have this message yet" in client.get(f"{PAGE}/{queued}").text
    assert len(queued_jobs(app)) == 1


def test_another_workspaces_group_send_is_not_found(app, signed_in, corp):
    group_send_id = add_group_send(app, corp.channel_id, external_userids=["wm_a"], msgid="msg_1")
    with harpoon_of(app).db.session() as session:
        workspace_named(session, "other")
        session.commit()
    client = signed_in("marketer", "other")
    assert client.get(f"{PAGE}/{group_send_id}").status_code == 404
    assert f"group-send-{group_send_id}" not in client.get(PAGE).text
    token = csrf_token(client.get(PAGE).text)
    response = client.post(f"{PAGE}/{group_send_id}/refresh", data={"csrf_token": token})
    assert response.status_code == 404


def test_the_navigation_links_group_sends_and_sales_alerts(signed_in):
    page = in_english(signed_in("viewer")).get("/admin/").text
    assert 'href="/admin/group-sends"' in page and 'href="/admin/notifications"' in page


def test_schema_messages_show_in_the_users_language(app):
    with pytest.raises(SchemaError) as too_many:
        GroupChatSendSchema().load(
            {
                "staff_userid": "zhangsan",
                "text": TEXT,
                "chat_ids": ["wr"] * 2001,
                "material_ids": list(range(10)),
            }
        )
    with pytest.raises(SchemaError) as bad_state:
        JoinWayInput().load({"name": "峰会", "state": "s" * 31, "chat_ids": []})
    corps = Formatted(NOT_THE_CORPS_GROUPS, chat_ids="wrA, wrB")
    assert str(corps) == "Not live customer groups of this corp: wrA, wrB."
    with app.test_request_context():  # nobody signed in: the Chinese UI
        assert translated_messages(too_many.value.messages) == [
            "至少一个群，最多 2000 个。",
            "最多 9 个附件。",
        ]
        assert translated_messages(bad_state.value.messages["state"]) == ["最多 30 个字符。"]
        assert translated_messages(bad_state.value.messages["chat_ids"]) == ["请选择 1 到 5 个群。"]
        assert translated_messages([corps]) == ["以下不是该企业现有的客户群：wrA, wrB。"]
        assert translated_messages(
            [
                "None of them is a live group this staff member owns.",
                "Not an item the library can attach.",
            ]
        ) == ["所选群都不是该员工当前拥有的客户群。", "该素材不能作为附件发送。"]
