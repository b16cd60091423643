"""Group sends by a salesperson against the sandbox: validation, add_msg_template, the
results before and after the staff member confirms, WeCom's monthly limit, and retries."""

from datetime import timedelta

import pytest
from marshmallow import ValidationError
from sqlalchemy import select, update

from core.jobs import Job
from demo.seed import register_tenant
from models import Channel, FollowRelation, GroupSend, Staff, utcnow
from sales import group_send as handler
from sales.group_send import (
    MONTHLY_LIMIT,
    NOT_A_FRIEND,
    NOT_SENT,
    SENT,
    GroupSendStatus,
    create_group_send,
    fetch_group_send_results,
    send_group_send,
)
from tests.factories import make_channel
from tests.helpers import WECOM_CREDS, harpoon_of, run_jobs, session_of
from wechat.clients import WeChatApiError
from wechat.sandbox import wecom
from wechat.sandbox.core import Fault
from wechat.sandbox.wecom import MSG_TEMPLATES_PER_CUSTOMER_PER_MONTH

CONTACT_SECRET = "contact-secret"
TEXT = "本周五下午两点，华东区 CIO 闭门会，欢迎报名。"

pytestmark = pytest.mark.sandbox


@pytest.fixture
def corp(app, platform, live_server):
    """A WeCom corp with two salespeople; 张三 has customers wm_a, wm_b and wm_c."""
    channel_id = make_channel(app, "wecom", WECOM_CREDS, secret=CONTACT_SECRET)
    with session_of(app) as session:
        channel = session.get(Channel, channel_id)
        register_tenant(platform.state, channel, live_server)
        for userid, name in (("zhangsan", "张三"), ("lisi", "李四")):
            wecom.add_staff(platform.state, tenant(platform), userid, name)
            session.add(
                Staff(
                    workspace_id=channel.workspace_id,
                    channel_id=channel_id,
                    userid=userid,
                    name=name,
                )
            )
        session.commit()
    for external_userid in ("wm_a", "wm_b", "wm_c"):
        customer(platform, external_userid)
    customer(platform, "wm_li", userid="lisi")
    settle(app, platform)
    return channel_id


def tenant(platform):
    return platform.state.tenant(WECOM_CREDS.app_id)


def customer(platform, external_userid, *, userid="zhangsan"):
    wecom.add_external_contact(
        platform.state,
        tenant(platform),
        userid=userid,
        external_userid=external_userid,
        name=external_userid,
    )


def settle(app, platform):
    platform.state.wait_for_deliveries()
    while run_jobs(app):
        platform.state.wait_for_deliveries()


def client_of(app):
    return harpoon_of(app).wechat.wecom(WECOM_CREDS.app_id, CONTACT_SECRET)


def create(app, corp, recipients, *, text=TEXT, staff="zhangsan"):
    """A committed group send; returns (id, not_customers)."""
    with session_of(app) as session:
        workspace_id = session.get(Channel, corp).workspace_id
        new = create_group_send(session, workspace_id, corp, staff, text, recipients, None)
        session.commit()
        return new.group_send.id, new.not_customers


def send(app, group_send_id):
    with session_of(app) as session:
        send_group_send(session, session.get(GroupSend, group_send_id), client_of(app))


def fetch(app, group_send_id):
    with session_of(app) as session:
        fetch_group_send_results(session, session.get(GroupSend, group_send_id), client_of(app))


def group_send(app, group_send_id) -> GroupSend:
    with session_of(app) as session:
        return session.get(GroupSend, group_send_id)


def confirm(platform, msgid):
    wecom.confirm_msg_template(platform.state, tenant(platform), msgid)


def templates(platform):
    return wecom.state_of(tenant(platform)).msg_templates


def errors_of(app, corp, recipients, **kwargs) -> dict:
    with pytest.raises(ValidationError) as raised:
        create(app, corp, recipients, **kwargs)
    return raised.value.messages


def test_send_then_results_before_and_after_the_staff_member_confirms(app, platform, corp):
    group_send_id, not_customers = create(app, corp, ["wm_a", "wm_b", "wm_li", "wm_nobody"])
    # 李四's customer and a stranger are reported, not silently dropped.
    assert not_customers == ["wm_li", "wm_nobody"]
    queued = group_send(app, group_send_id)
    assert (queued.status, queued.external_userids) == (GroupSendStatus.QUEUED, ["wm_a", "wm_b"])

    harpoon_of(app).queue.enqueue(Job.SEND_GROUP_SEND, group_send_id)
    run_jobs(app)
    sent = group_send(app, group_send_id)
    assert sent.status == GroupSendStatus.SENT and sent.msgid and sent.fail_list == []
    template = templates(platform)[sent.msgid]
    assert (template.sender, template.external_userids) == ("zhangsan", ["wm_a", "wm_b"])
    assert template.text == {"content": TEXT}

    fetch(app, group_send_id)
    waiting = group_send(app, group_send_id)
    assert waiting.results == {"wm_a": NOT_SENT, "wm_b": NOT_SENT}
    assert waiting.status == GroupSendStatus.SENT and waiting.results_at is not None

    # wm_b deletes 张三 before he confirms: WeCom no longer counts them a friend.
    wecom.delete_follow_user(
        platform.state, tenant(platform), userid="zhangsan", external_userid="wm_b"
    )
    confirm(platform, sent.msgid)
    harpoon_of(app).queue.enqueue(Job.FETCH_GROUP_SEND_RESULTS, group_send_id)
    run_jobs(app)
    done = group_send(app, group_send_id)
    assert done.results == {"wm_a": SENT, "wm_b": NOT_A_FRIEND}
    assert done.status == GroupSendStatus.CONFIRMED and done.results_at >= waiting.results_at


def test_a_send_with_a_msgid_is_never_handed_to_wecom_again(app, platform, corp):
    group_send_id, _ = create(app, corp, ["wm_a"])
    send(app, group_send_id)
    msgid = group_send(app, group_send_id).msgid
    send(app, group_send_id)
    with session_of(app) as session:  # even if its status were lost
        session.execute(
            update(GroupSend)
            .where(GroupSend.id == group_send_id)
            .values(status=GroupSendStatus.QUEUED)
        )
        session.commit()
    send(app, group_send_id)
    assert list(templates(platform)) == [msgid]
    assert group_send(app, group_send_id).msgid == msgid


def test_the_monthly_limit_shows_in_the_fail_list_and_the_results(app, platform, corp):
    for _ in range(MSG_TEMPLATES_PER_CUSTOMER_PER_MONTH - 1):
        earlier, _ = create(app, corp, ["wm_a"])
        send(app, earlier)
        confirm(platform, group_send(app, earlier).msgid)
    # Two sends wait for confirmation while wm_a has room for one more this month.
    first, _ = create(app, corp, ["wm_a", "wm_b"])
    second, _ = create(app, corp, ["wm_a", "wm_c"])
    send(app, first)
    send(app, second)
    confirm(platform, group_send(app, first).msgid)
    confirm(platform, group_send(app, second).msgid)
    fetch(app, first)
    fetch(app, second)
    assert group_send(app, first).results == {"wm_a": SENT, "wm_b": SENT}
    assert group_send(app, second).results == {"wm_a": MONTHLY_LIMIT, "wm_c": SENT}
    assert handler.result_counts(group_send(app, second)) == {SENT: 1, MONTHLY_LIMIT: 1}

    # Now WeCom refuses wm_a up front: they come back in the fail_list.
    third, _ = create(app, corp, ["wm_a", "wm_b"])
    send(app, third)
    sent = group_send(app, third)
    assert sent.status == GroupSendStatus.SENT and sent.fail_list == ["wm_a"]
    assert templates(platform)[sent.msgid].external_userids == ["wm_b"]


def test_a_send_nobody_can_receive_fails_with_wecoms_error(app, platform, corp):
    group_send_id, _ = create(app, corp, ["wm_a"])
    # wm_a left after the send was made: WeCom has no one to send it to.
    wecom.delete_follow_user(
        platform.state, tenant(platform), userid="zhangsan", external_userid="wm_a"
    )
    send(app, group_send_id)
    failed = group_send(app, group_send_id)
    assert failed.status == GroupSendStatus.FAILED and failed.msgid is None
    assert "41048" in failed.error
    send(app, group_send_id)  # a refusal is final: not tried again
    assert templates(platform) == {}


def test_a_busy_platform_raises_and_leaves_the_send_queued(app, platform, corp):
    group_send_id, _ = create(app, corp, ["wm_a"])
    platform.state.add_fault(
        Fault("/wecom/cgi-bin/externalcontact/add_msg_template", errcode=-1, times=20)
    )
    with pytest.raises(WeChatApiError) as raised:
        send(app, group_send_id)
    assert raised.value.errcode == -1
    still = group_send(app, group_send_id)
    assert (still.status, still.msgid, still.error) == (GroupSendStatus.QUEUED, None, None)
    platform.state.faults.clear()
    send(app, group_send_id)
    assert group_send(app, group_send_id).status == GroupSendStatus.SENT


def test_results_are_read_page_by_page(app, platform, corp, monkeypatch):
    monkeypatch.setattr(handler, "RESULTS_PAGE_SIZE", 1)
    group_send_id, _ = create(app, corp, ["wm_a", "wm_b", "wm_c"])
    send(app, group_send_id)
    confirm(platform, group_send(app, group_send_id).msgid)
    fetch(app, group_send_id)
    assert group_send(app, group_send_id).results == {"wm_a": SENT, "wm_b": SENT, "wm_c": SENT}


def test_an_unknown_msgid_is_recorded_as_an_error(app, platform, corp):
    group_send_id, _ = create(app, corp, ["wm_a"])
    send(app, group_send_id)
    with session_of(app) as session:
        session.get(GroupSend, group_send_id).msgid = "msg_unknown"
        session.commit()
    fetch(app, group_send_id)
    row = group_send(app, group_send_id)
    assert row.status == GroupSendStatus.SENT and "41047" in row.error and row.results == {}


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "字" * 2001}, "text"),
        ({"staff": "wangwu"}, "staff_userid"),
    ],
)
def test_bad_input_is_refused_by_field(app, corp, kwargs, key):
    assert key in errors_of(app, corp, ["wm_a"], **kwargs)


def test_recipients_must_be_the_staff_members_active_customers(app, platform, corp):
    assert "external_userids" in errors_of(app, corp, [])
    assert "external_userids" in errors_of(app, corp, ["wm_li", "wm_nobody"])
    # A relation 张三 deleted is no longer a customer of his.
    wecom.delete_external_contact(
        platform.state, tenant(platform), userid="zhangsan", external_userid="wm_c"
    )
    settle(app, platform)
    assert "external_userids" in errors_of(app, corp, ["wm_c"])
    _, not_customers = create(app, corp, ["wm_a", "wm_a", "wm_c"], text="字" * 2000)
    assert not_customers == ["wm_c"]
    with session_of(app) as session:
        session.execute(update(Staff).where(Staff.userid == "zhangsan").values(active=False))
        session.commit()
    assert "staff_userid" in errors_of(app, corp, ["wm_a"])


def test_the_periodic_job_refreshes_the_weeks_sends_and_requeues_lost_ones(app, platform, corp):
    waiting, _ = create(app, corp, ["wm_a"])
    old, _ = create(app, corp, ["wm_b"])
    lost, _ = create(app, corp, ["wm_c"])
    fresh, _ = create(app, corp, ["wm_a"])
    for group_send_id in (waiting, old):
        send(app, group_send_id)
    with session_of(app) as session:
        for group_send_id, age in ((old, timedelta(days=8)), (lost, timedelta(minutes=30))):
            session.execute(
                update(GroupSend)
                .where(GroupSend.id == group_send_id)
                .values(created_at=utcnow() - age)
            )
        session.commit()
        assert handler.results_due(session) == [waiting]
        assert handler.queued_too_long(session) == [lost]
    confirm(platform, group_send(app, waiting).msgid)
    harpoon_of(app).queue.enqueue(Job.REFRESH_GROUP_SEND_RESULTS)
    run_jobs(app)
    assert group_send(app, waiting).status == GroupSendStatus.CONFIRMED
    assert group_send(app, old).results == {}  # more than a week old: left alone
    assert group_send(app, lost).status == GroupSendStatus.SENT
    assert group_send(app, fresh).status == GroupSendStatus.QUEUED  # its own job is coming
    with session_of(app) as session:
        # Confirmed and every recipient decided: nothing left to learn.
        assert handler.results_due(session) == [lost]


def test_follow_relations_come_from_the_drain(app, corp):
    with session_of(app) as session:
        relations = session.execute(
            select(FollowRelation.staff_userid, FollowRelation.external_userid)
        ).all()
    # In any order: the adds are drained in their people's lanes.
    assert sorted(relations) == [
        ("lisi", "wm_li"),
        ("zhangsan", "wm_a"),
        ("zhangsan", "wm_b"),
        ("zhangsan", "wm_c"),
    ]
