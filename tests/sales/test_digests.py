"""Alerts that respect a salesperson, sent through the sandbox over HTTP: one digest per
interval per person grouped by account, a daily cap that holds everything but MQA entries
for tomorrow, and task reminders that appear once (again daily when overdue)."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models import (
    Account,
    Channel,
    NotificationStatus,
    Staff,
    StaffNotification,
    User,
    Workspace,
)
from sales.notify import digests_due, notify_owner, notify_staff, send_notifications
from tests.factories import make_account, make_channel, make_salesperson, make_task
from tests.helpers import WECOM_CREDS, harpoon_of, session_of
from wechat.sandbox import wecom
from wechat.simulate import Credentials

pytestmark = pytest.mark.sandbox

# 10:00 in Shanghai tomorrow: a whole working day ahead, whatever the clock says now.
T0 = (datetime.now(UTC) + timedelta(days=1)).replace(hour=2, minute=0, second=0, microsecond=0)


def messages(platform, userid="zhangsan") -> list[str]:
    state = wecom.state_of(platform.state.tenant(WECOM_CREDS.app_id))
    return [m.content["content"] for m in state.app_messages if m.userid == userid]


def send(app, corp, now):
    """The send_notifications job's work at `now`, through the sandbox."""
    h = harpoon_of(app)
    with h.db.session() as session:
        channel = session.get(Channel, corp)
        client = h.wechat.wecom(channel.app_id, channel.agent_secret)
        return send_notifications(session, channel, client, now=now)


def note(app, corp, text, *, userid="zhangsan", kind="journey", account_id=None, summary=None):
    with session_of(app) as session:
        channel = session.get(Channel, corp)
        notify_staff(
            session,
            workspace_id=channel.workspace_id,
            channel_id=corp,
            staff_userid=userid,
            kind=kind,
            text=text,
            account_id=account_id,
            summary=summary,
        )
        session.commit()


def configure(app, **values):
    with session_of(app) as session:
        workspace = session.scalar(select(Workspace).where(Workspace.name == "acme"))
        for name, value in values.items():
            setattr(workspace, name, value)
        session.commit()


def test_fifty_notes_in_ten_minutes_are_one_message_per_interval_grouped_by_account(
    app, platform, corp
):
    configure(app, digest_minutes=60)
    huaxin, yunfan = make_account(app, "华信科技"), make_account(app, "云帆网络")
    for n in range(50):
        at = T0 + timedelta(seconds=12 * n)
        account = huaxin if n % 2 else yunfan
        note(
            app,
            corp,
            f"李总{n} 读了《白皮书》",
            account_id=account,
            summary=f"李总{n} 读了《白皮书》",
        )
        if n < 5:
            note(app, corp, f"给李四的 {n}", userid="lisi")
        send(app, corp, at)  # the job runs after every note, as the drain asks for it
    assert len(messages(platform)) == 1  # the first note at once, the rest wait
    assert len(messages(platform, "lisi")) == 1
    with session_of(app) as session:
        assert session.get(Channel, corp).id in digests_due(session, T0 + timedelta(minutes=61))
        assert corp not in digests_due(session, T0 + timedelta(minutes=30))
    send(app, corp, T0 + timedelta(minutes=30))
    assert len(messages(platform)) == 1
    send(app, corp, T0 + timedelta(minutes=61))
    first, second = messages(platform)
    assert first == "李总0 读了《白皮书》"
    assert second.startswith("Harpoon：49 条新提醒")
    lines = second.splitlines()
    assert lines[1] == (
        "1. 华信科技：李总1 读了《白皮书》；李总3 读了《白皮书》；李总5 读了《白皮书》；"
        "李总7 读了《白皮书》；…等 25 条"
    )
    assert lines[2].startswith("2. 云帆网络：李总2 读了《白皮书》；")
    assert lines[2].endswith("…等 24 条")
    assert len(lines) == 3  # two accounts, one line each
    assert len(messages(platform, "lisi")) == 2
    with session_of(app) as session:
        statuses = set(session.scalars(select(StaffNotification.status)))
        assert statuses == {NotificationStatus.SENT}


def test_the_daily_cap_holds_everything_but_mqa_until_tomorrow(app, platform, corp):
    configure(app, digest_minutes=10, staff_messages_per_day=1)
    huaxin = make_account(app, "华信科技")
    note(app, corp, "早上好")
    send(app, corp, T0)
    note(app, corp, "李总 读了《白皮书》", account_id=huaxin, summary="李总 读了《白皮书》")
    note(app, corp, "「华信科技」达到 MQA", kind="account_mqa", account_id=huaxin, summary="MQA")
    send(app, corp, T0 + timedelta(minutes=11))
    assert messages(platform) == ["早上好", "「华信科技」达到 MQA"]
    with session_of(app) as session:
        held = session.scalars(
            select(StaffNotification.text).where(
                StaffNotification.status == NotificationStatus.HELD
            )
        ).all()
        assert held == ["李总 读了《白皮书》"]
        assert corp not in digests_due(session, T0 + timedelta(hours=5))
        assert corp in digests_due(session, T0 + timedelta(days=1))
    send(app, corp, T0 + timedelta(hours=5))  # still today: held
    assert len(messages(platform)) == 2
    send(app, corp, T0 + timedelta(days=1))  # tomorrow's first digest
    assert messages(platform)[-1] == "李总 读了《白皮书》"


def test_a_task_due_soon_is_reminded_once_and_daily_when_overdue(app, platform, corp):
    configure(app, digest_minutes=60)
    with session_of(app) as session:
        zhangsan = session.scalar(select(User.id).where(User.email == "sales@acme.example"))
    huaxin = make_account(app, "华信科技")
    make_task(
        app,
        "给李总打电话",
        assignee_id=zhangsan,
        account_id=huaxin,
        due_in=T0 - datetime.now(UTC) + timedelta(minutes=30),
    )
    make_task(
        app, "next week", assignee_id=zhangsan, due_in=T0 - datetime.now(UTC) + timedelta(days=7)
    )
    make_task(app, "someone else's", due_in=T0 - datetime.now(UTC))
    with session_of(app) as session:
        assert corp in digests_due(session, T0)
    send(app, corp, T0)
    (reminder,) = messages(platform)
    assert reminder.startswith("华信科技：任务「给李总打电话」") and "到期" in reminder
    send(app, corp, T0 + timedelta(minutes=61))  # the next digest: no repeat
    send(app, corp, T0 + timedelta(hours=5))  # overdue, but reminded today
    assert len(messages(platform)) == 1
    with session_of(app) as session:
        assert corp not in digests_due(session, T0 + timedelta(hours=5))
    send(app, corp, T0 + timedelta(days=1, minutes=1))
    assert messages(platform)[-1] == "华信科技：任务「给李总打电话」已逾期"


def test_an_owners_note_goes_only_to_staff_of_the_accounts_workspace(app):
    owner = make_salesperson(app, "张三", "zhangsan")
    account_id = make_account(app, "华信", owner_id=owner)
    rival_corp = make_channel(
        app, "wecom", Credentials("wwrival", "rivaltoken", WECOM_CREDS.aes_key), workspace="rival"
    )
    with session_of(app) as session:
        rival = session.get(Channel, rival_corp)
        # Written around the validation: a rival member claiming acme's user.
        session.add(
            Staff(workspace_id=rival.workspace_id, channel_id=rival.id, userid="spy", user_id=owner)
        )
        session.commit()
        told = notify_owner(
            session, session.get(Account, account_id), kind="journey", text="跟进", dedupe_key="k"
        )
        session.commit()
        assert told == 1
        assert session.scalars(select(StaffNotification.staff_userid)).all() == ["zhangsan"]
