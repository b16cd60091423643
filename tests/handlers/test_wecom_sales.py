"""Selling through WeCom against the sandbox: adds through 联系我 codes, welcome messages
in the 20 s window, relations ended by either side, and notifications to the salesperson."""

from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from core.jobs import Job
from demo.seed import register_tenant
from models import (
    Account,
    Channel,
    FollowRelation,
    Identity,
    NotificationStatus,
    Staff,
    StaffNotification,
    WelcomeMessage,
    WelcomeStatus,
    utcnow,
)
from sales.notify import MESSAGES_PER_MINUTE, notify_staff
from tests.factories import add_way, make_channel, make_user
from tests.helpers import WECOM_CREDS, harpoon_of, run_jobs, tag_names
from wechat.sandbox import wecom

CONTACT_SECRET, AGENT_SECRET, AGENT_ID = "contact-secret", "agent-secret", "1000002"

pytestmark = pytest.mark.sandbox


@pytest.fixture
def corp(app, platform, live_server):
    channel_id = make_channel(
        app,
        "wecom",
        WECOM_CREDS,
        secret=CONTACT_SECRET,
        agent_id=AGENT_ID,
        agent_secret=AGENT_SECRET,
    )
    with harpoon_of(app).db.session() as session:
        register_tenant(platform.state, session.get(Channel, channel_id), live_server)
    with harpoon_of(app).db.session() as session:
        workspace_id = session.get(Channel, channel_id).workspace_id
        for userid, name in (("zhangsan", "张三"), ("lisi", "李四")):
            wecom.add_staff(platform.state, tenant(platform), userid, name)
            session.add(
                Staff(workspace_id=workspace_id, channel_id=channel_id, userid=userid, name=name)
            )
        session.commit()
    return channel_id


def tenant(platform):
    return platform.state.tenant(WECOM_CREDS.app_id)


def settle(app, platform):
    platform.state.wait_for_deliveries()
    while run_jobs(app):
        platform.state.wait_for_deliveries()


def customer(platform, external_userid, *, userid="zhangsan", **fields):
    return wecom.add_external_contact(
        platform.state,
        tenant(platform),
        userid=userid,
        external_userid=external_userid,
        name=fields.pop("name", external_userid),
        **fields,
    )


def rows(app, model):
    with harpoon_of(app).db.session() as session:
        return session.scalars(select(model).order_by(model.id)).all()


def test_same_second_adds_through_one_code_are_both_kept_and_welcomed(app, platform, corp):
    way_id = add_way(app, corp, tag="source:展会")
    customer(platform, "wm_a", name="王芳", state="expo-booth")
    customer(platform, "wm_b", name="李娜", state="expo-booth")  # the same second
    settle(app, platform)

    relations = rows(app, FollowRelation)
    assert [(r.external_userid, r.contact_way_id) for r in relations] == [
        ("wm_a", way_id),
        ("wm_b", way_id),
    ]
    with harpoon_of(app).db.session() as session:
        assert all("source:展会" in tag_names(session, r.contact_id) for r in relations)
    sent = {m.external_userid: m for m in wecom.state_of(tenant(platform)).welcome_messages}
    assert sent["wm_a"].text == {"content": "王芳您好，我是张三，为您准备了我们的产品资料。"}
    assert sent["wm_b"].seconds_after_add < 20
    welcomes = rows(app, WelcomeMessage)
    assert [w.status for w in welcomes] == [WelcomeStatus.SENT] * 2
    assert all(w.sent_at >= w.received_at for w in welcomes)


def test_a_redelivered_add_never_sends_a_second_welcome(app, platform, corp):
    add_way(app, corp)
    customer(platform, "wm_once", state="expo-booth")
    settle(app, platform)
    # WeChat retries a callback it thinks was lost: the same XML again.
    platform.state.deliver(tenant(platform), platform.state.deliveries[-1].xml)
    settle(app, platform)
    assert len(wecom.state_of(tenant(platform)).welcome_messages) == 1
    assert len(rows(app, WelcomeMessage)) == 1


def test_a_welcome_past_the_20_second_window_is_marked_missed(app, platform, corp):
    add_way(app, corp)
    platform.state.clock_offset = -30  # the add happened 30 s ago; its callback is late
    customer(platform, "wm_late", state="expo-booth")
    settle(app, platform)
    (welcome,) = rows(app, WelcomeMessage)
    assert welcome.status == WelcomeStatus.MISSED
    assert wecom.state_of(tenant(platform)).welcome_messages == []


def fault(platform, endpoint: str, errcode: int, times: int, params: dict | None = None) -> None:
    """WeCom answers the next `times` calls to `endpoint` (with these query `params`, if
    given) with `errcode`, asked over HTTP as anyone driving the sandbox would."""
    requests.post(
        f"{platform.url}/sandbox/faults",
        json={
            "path": f"/wecom/cgi-bin/{endpoint}",
            "errcode": errcode,
            "times": times,
            "params": params,
        },
        timeout=5,
    ).raise_for_status()


def test_a_welcome_the_busy_platform_refused_is_sent_again_in_its_window(app, platform, corp):
    add_way(app, corp)
    # -1 on the first try and on each of the client's three busy retries.
    fault(platform, "externalcontact/send_welcome_msg", -1, times=4)
    customer(platform, "wm_busy", name="王芳", state="expo-booth")
    settle(app, platform)
    assert platform.state.error_counts[-1] == 4
    (welcome,) = rows(app, WelcomeMessage)
    assert welcome.status == WelcomeStatus.SENT and welcome.error is None
    assert [m.external_userid for m in wecom.state_of(tenant(platform)).welcome_messages] == [
        "wm_busy"
    ]


def test_a_welcome_still_failing_when_its_window_closes_is_missed(app, platform, corp):
    add_way(app, corp)
    platform.state.clock_offset = -18  # the add happened 18 s ago: 2 s of window are left
    fault(platform, "externalcontact/send_welcome_msg", -1, times=10_000)
    customer(platform, "wm_down", state="expo-booth")
    settle(app, platform)
    (welcome,) = rows(app, WelcomeMessage)
    assert welcome.status == WelcomeStatus.MISSED
    assert platform.state.error_counts[-1] >= 4  # it was tried, and tried again
    assert wecom.state_of(tenant(platform)).welcome_messages == []


def test_a_customer_who_chatted_gets_no_second_welcome(app, platform, corp):
    add_way(app, corp)
    customer(platform, "wm_chat", state="expo-booth")
    settle(app, platform)
    wecom.delete_follow_user(
        platform.state, tenant(platform), userid="zhangsan", external_userid="wm_chat"
    )
    customer(platform, "wm_chat", state="expo-booth")  # re-added: they have chatted
    settle(app, platform)
    assert len(rows(app, WelcomeMessage)) == 1  # the re-add carried no WelcomeCode


def test_relations_end_by_either_side_and_a_lost_customer_is_reported(app, platform, corp):
    customer(platform, "wm_x", userid="zhangsan")
    customer(platform, "wm_x", userid="lisi")
    settle(app, platform)
    wecom.delete_external_contact(
        platform.state, tenant(platform), userid="zhangsan", external_userid="wm_x"
    )
    wecom.delete_follow_user(
        platform.state, tenant(platform), userid="lisi", external_userid="wm_x"
    )
    settle(app, platform)
    ended = {r.staff_userid: r for r in rows(app, FollowRelation)}
    assert ended["zhangsan"].removed_by == "staff" and ended["zhangsan"].removed_at
    assert ended["lisi"].removed_by == "customer" and ended["lisi"].removed_at
    (lost,) = rows(app, StaffNotification)
    assert (lost.staff_userid, lost.kind, lost.status) == ("lisi", "customer_lost", "sent")
    (message,) = wecom.state_of(tenant(platform)).app_messages
    assert message.userid == "lisi" and "流失" in message.content["content"]


def test_an_add_from_a_target_account_notifies_the_salesperson_and_the_owner(
    app,
    platform,
    corp,
):
    owner = make_user(app, "sales", workspace="acme", email="lisi@acme.example")
    with harpoon_of(app).db.session() as session:
        workspace_id = session.get(Channel, corp).workspace_id
        session.add(
            Account(
                workspace_id=workspace_id,
                name="上海华信科技有限公司",
                normalized_name="上海华信科技",
                is_target=True,
                owner_id=owner,
            )
        )
        lisi = session.scalar(select(Staff).where(Staff.userid == "lisi"))
        lisi.user_id = owner  # lisi signs in as the account's owner
        session.commit()
    customer(platform, "wm_t", name="罗军", corp_name="上海华信科技(中国)有限公司", position="CIO")
    customer(platform, "wm_other", name="路人", corp_name="别家公司")
    settle(app, platform)
    messages = {m.userid: m for m in wecom.state_of(tenant(platform)).app_messages}
    assert sorted(messages) == ["lisi", "zhangsan"]
    assert all(m.delivered for m in messages.values())
    assert "上海华信科技有限公司" in messages["zhangsan"].content["content"]
    assert "罗军（CIO）" in messages["zhangsan"].content["content"]
    assert "你负责的目标客户" in messages["lisi"].content["content"]


def test_a_burst_of_notifications_is_one_digest_and_the_limit_defers(app, platform, corp):
    with harpoon_of(app).db.session() as session:
        workspace_id = session.get(Channel, corp).workspace_id
        for n in range(12):
            notify_staff(
                session,
                workspace_id=workspace_id,
                channel_id=corp,
                staff_userid="zhangsan",
                kind="test",
                text=f"提醒 {n}",
            )
        session.commit()
    harpoon_of(app).queue.enqueue_followups({("send_notifications", corp)})
    settle(app, platform)
    (digest,) = wecom.state_of(tenant(platform)).app_messages
    assert digest.content["content"].startswith("Harpoon：12 条新提醒")
    assert "另有 2 条" in digest.content["content"]
    assert {n.msgid for n in rows(app, StaffNotification)} == {digest.msgid}

    # 30 messages went to lisi in the last minute: the next one waits.
    with harpoon_of(app).db.session() as session:
        for n in range(MESSAGES_PER_MINUTE):
            session.add(
                StaffNotification(
                    workspace_id=workspace_id,
                    channel_id=corp,
                    staff_userid="lisi",
                    kind="test",
                    text="earlier",
                    status=NotificationStatus.SENT,
                    msgid=f"m{n}",
                    sent_at=utcnow() - timedelta(seconds=10),
                )
            )
        notify_staff(
            session,
            workspace_id=workspace_id,
            channel_id=corp,
            staff_userid="lisi",
            kind="test",
            text="稍后",
        )
        session.commit()
    harpoon_of(app).queue.enqueue_followups({("send_notifications", corp)})
    settle(app, platform)
    waiting = [n for n in rows(app, StaffNotification) if n.text == "稍后"]
    assert [n.status for n in waiting] == [NotificationStatus.PENDING]
    assert len(wecom.state_of(tenant(platform)).app_messages) == 1


def test_the_welcome_knows_what_the_follower_read_on_the_oa(app, platform, corp, live_server):
    from tests.helpers import OA_CREDS
    from wechat.sandbox import oa

    oa_id = make_channel(
        app, "oa", OA_CREDS, message_mode="safe", account_type="service", secret="oa-secret"
    )
    with harpoon_of(app).db.session() as session:
        register_tenant(platform.state, session.get(Channel, oa_id), live_server)
    oa_tenant = platform.state.tenant(OA_CREDS.app_id)
    oa.follow(platform.state, oa_tenant, "o_reader", unionid="u_reader")
    oa.view(platform.state, oa_tenant, "o_reader", "https://harpoon.example/whitepaper")
    settle(app, platform)
    add_way(app, corp)
    customer(platform, "wm_reader", name="周明", unionid="u_reader", state="expo-booth")
    settle(app, platform)
    (message,) = wecom.state_of(tenant(platform)).welcome_messages
    assert message.text == {
        "content": "周明您好，我是张三，为您准备了https://harpoon.example/whitepaper。"
    }


def test_a_staff_alert_refused_with_42001_stays_pending_and_the_sweeper_delivers_it(
    app, platform, corp
):
    # The token refused twice: Harpoon's one refresh-and-replay meets 42001 again.
    fault(platform, "message/send", 42001, times=2)
    with harpoon_of(app).db.session() as session:
        notify_staff(
            session,
            workspace_id=session.get(Channel, corp).workspace_id,
            channel_id=corp,
            staff_userid="zhangsan",
            kind="test",
            text="目标客户来访",
        )
        session.commit()
    harpoon_of(app).queue.enqueue_followups({(Job.SEND_NOTIFICATIONS, corp)})
    settle(app, platform)
    (note,) = rows(app, StaffNotification)
    assert note.status == NotificationStatus.PENDING and "42001" in note.error
    assert wecom.state_of(tenant(platform)).app_messages == []

    harpoon_of(app).queue.enqueue(Job.SWEEP_INBOX)  # what cron runs every sweep interval
    settle(app, platform)
    (note,) = rows(app, StaffNotification)
    assert note.status == NotificationStatus.SENT and note.error is None
    (message,) = wecom.state_of(tenant(platform)).app_messages
    assert message.userid == "zhangsan" and message.content["content"] == "目标客户来访"


@pytest.mark.parametrize("errcode", [60011, 84014])  # no permission; not the corp's customer
def test_a_customer_wecom_keeps_refusing_is_recorded_and_the_others_are_enriched(
    app, platform, corp, errcode
):
    refused = {"external_userid": "wm_refused"}
    fault(platform, "externalcontact/get", errcode, times=100, params=refused)
    customer(platform, "wm_refused", name="刘备", position="总经理")
    settle(app, platform)  # the first one looked up
    customer(platform, "wm_zhao", name="赵云", position="采购总监")
    customer(platform, "wm_ma", name="马超", position="CIO")
    settle(app, platform)

    with harpoon_of(app).db.session() as session:
        identities = {
            row.value: row
            for row in session.scalars(select(Identity).where(Identity.kind == "external_userid"))
        }
        assert all(row.enriched_at is not None for row in identities.values())
        assert identities["wm_refused"].details == {"error": f"{errcode} injected"}
        assert identities["wm_zhao"].contact.name == "赵云"
        assert identities["wm_ma"].contact.name == "马超"
        assert identities["wm_refused"].contact.name != "刘备"
