"""Telling a salesperson something, as a WeCom app message — without flooding them.

`notify_staff` / `notify_owner` only record the note (idempotent by its dedupe key, with
the account it is about) and ask for a `send_notifications` job. The job sends each staff
member their pending notes as one digest, grouped by account ("华信科技：MQA；李总 · 读了
《白皮书》"), and with it the member's task reminders (tasks due within their interval, or
overdue: again once a day). A member gets at most one digest per interval (their own
`Staff.digest_minutes`, else the workspace's `digest_minutes`) and at most the workspace's
`staff_messages_per_day` digests a day; past that cap their notes are held for tomorrow's
first digest, except MQA entries, which always go out. The sweeper asks for the digests
that are due (`digests_due`). The job also keeps within WeCom's limit of about 30 app
messages a minute per member (past it the platform drops them silently).

A note whose send failed transiently (core.transient: a token refused, the platform busy,
no answer) keeps its last error and stays pending for the next digest; only a refusal that
would be the same next time fails it.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.jobs import Followups, Job
from core.transient import is_transient
from models import (
    Account,
    Channel,
    FollowRelation,
    NotificationStatus,
    Staff,
    StaffNotification,
    Task,
    TaskStatus,
    Workspace,
    utcnow,
)
from models.base import insert_ignoring_conflicts
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

MESSAGES_PER_MINUTE = 30  # per member, WeCom's app-message limit
TEXT_LIMIT_BYTES = 2048  # a text app message's content
DIGEST_ITEMS = 10  # entries (accounts or notes) a digest lists before "and N more"
ENTRIES_PER_ACCOUNT = 4  # an account's line lists this many, then "…等 N 条"
# Entries that go out past the daily cap.
ALWAYS_SENT = frozenset({"account_mqa"})
# How an alert reads under its account in a digest.
ALERT_SUMMARIES = {"account_mqa": "MQA", "account_surge": "互动激增"}
TASK_REMINDER = "task_reminder"
OVERDUE_REMINDER_EVERY = timedelta(days=1)
UNSENT = (NotificationStatus.PENDING, NotificationStatus.HELD)


def notify_staff(
    session: Session,
    *,
    workspace_id: int,
    channel_id: int,
    staff_userid: str,
    kind: str,
    text: str,
    dedupe_key: str | None = None,
    followups: Followups | None = None,
    account_id: int | None = None,
    summary: str | None = None,
) -> bool:
    """Record a note for one staff member; False if this dedupe key was noted before.
    `account_id`: what it is about, for the digest's grouping; `summary`: the note as it
    reads under that account's name (else its text)."""
    inserted = session.execute(
        insert_ignoring_conflicts(session.get_bind().dialect.name, StaffNotification.__table__)
        .values(
            workspace_id=workspace_id,
            channel_id=channel_id,
            staff_userid=staff_userid,
            kind=kind,
            text=text[:1000],
            account_id=account_id,
            summary=summary[:300] if summary else None,
            dedupe_key=dedupe_key,
            status=NotificationStatus.PENDING,
            created_at=utcnow(),
        )
        .returning(StaffNotification.id)
    ).first()
    if inserted and followups is not None:
        followups.add(Job.SEND_NOTIFICATIONS, channel_id)
    return inserted is not None


def notify_owner(
    session: Session,
    account: Account,
    *,
    kind: str,
    text: str,
    dedupe_key: str,
    followups: Followups | None = None,
    summary: str | None = None,
) -> int:
    """Notify the account's owner on every WeCom corp where they are staff; returns how many.
    `summary`: the note as it reads under the account's name in a digest."""
    if account.owner_id is None:
        return 0
    staff = session.scalars(
        select(Staff).where(
            Staff.workspace_id == account.workspace_id,
            Staff.user_id == account.owner_id,
            Staff.active.is_(True),
        )
    ).all()
    return sum(
        notify_staff(
            session,
            workspace_id=account.workspace_id,
            channel_id=member.channel_id,
            staff_userid=member.userid,
            kind=kind,
            text=text,
            dedupe_key=f"{dedupe_key}:{member.channel_id}:{member.userid}",
            followups=followups,
            account_id=account.id,
            summary=summary,
        )
        for member in staff
    )


def notify_owners(session: Session, alerts, followups: Followups | None = None) -> int:
    """Scoring's owner alerts (scoring.engine.OwnerAlert): MQA reached, intent surging."""
    return sum(
        notify_owner(
            session,
            session.get(Account, alert.account_id),
            kind=alert.kind,
            text=alert.text,
            dedupe_key=alert.dedupe_key,
            followups=followups,
            summary=ALERT_SUMMARIES.get(alert.kind),
        )
        for alert in alerts
    )


@dataclass
class NotifyResult:
    messages: int = 0
    notifications: int = 0
    deferred: int = 0  # WeCom's per-minute limit: the next digest takes them
    waiting: int = 0  # the member's interval has not passed: their next digest takes them
    held: int = 0  # past the member's daily cap: tomorrow's first digest takes them
    reminders: int = 0  # task reminders added to the digests
    retrying: int = 0  # a transient failure: still pending, with its error
    failed: int = 0


@dataclass(frozen=True)
class _Member:
    userid: str
    user_id: int | None
    interval: timedelta


def send_notifications(
    session: Session, channel: Channel, client, now: datetime | None = None
) -> NotifyResult:
    """Each member's digest that is due: their pending notes and task reminders as one
    message, within their interval, the daily cap and WeCom's per-minute limit."""
    result = NotifyResult()
    now = now or utcnow()
    workspace = session.get(Workspace, channel.workspace_id)
    members = _members(session, channel, workspace)
    default = timedelta(minutes=workspace.digest_minutes)
    last = _last_digests(session, channel.id, now)
    due = {
        userid: member
        for userid, member in members.items()
        if userid not in last or now >= last[userid] + member.interval
    }
    result.reminders = add_task_reminders(session, channel, due.values(), now)
    pending = session.scalars(
        select(StaffNotification)
        .where(
            StaffNotification.channel_id == channel.id,
            StaffNotification.status.in_(UNSENT),
        )
        .order_by(StaffNotification.id)
        .with_for_update(skip_locked=True)
    ).all()
    by_staff: dict[str, list[StaffNotification]] = {}
    for note in pending:
        by_staff.setdefault(note.staff_userid, []).append(note)
    today = _day_start(workspace, now)
    sent_today = _digests_since(session, channel.id, today)
    for userid, notes in by_staff.items():
        interval = members[userid].interval if userid in members else default
        if userid in last and now < last[userid] + interval:
            result.waiting += len(notes)
            continue
        if _sent_last_minute(session, channel.id, userid, now) >= MESSAGES_PER_MINUTE:
            result.deferred += len(notes)  # the next run (or the sweeper) sends them as a digest
            continue
        if sent_today.get(userid, 0) >= workspace.staff_messages_per_day:
            for note in notes:
                if note.kind not in ALWAYS_SENT and note.status != NotificationStatus.HELD:
                    note.status = NotificationStatus.HELD
            result.held += sum(note.kind not in ALWAYS_SENT for note in notes)
            notes = [note for note in notes if note.kind in ALWAYS_SENT]
            if not notes:
                session.commit()
                continue
        names = _account_names(session, channel.workspace_id, notes)
        try:
            answer = client.post(
                "message/send",
                data={
                    "touser": userid,
                    "msgtype": "text",
                    "agentid": int(channel.agent_id or 0),
                    "text": {"content": digest(notes, names)},
                },
            )
        except WeChatApiError as exc:
            # A timeout may have delivered the digest; sending it again is a duplicate
            # reminder at worst, while giving up would lose it.
            transient = is_transient(exc)
            for note in notes:
                note.error = str(exc)[:500]
                if not transient:
                    note.status = NotificationStatus.FAILED
            if transient:
                result.retrying += len(notes)
                log.warning(
                    "channel %s: %s note(s) for %s stay pending, the sweeper retries: %s",
                    channel.id,
                    len(notes),
                    userid,
                    exc,
                )
            else:
                result.failed += len(notes)
            session.commit()
            continue
        for note in notes:
            note.status, note.sent_at, note.msgid, note.error = (
                NotificationStatus.SENT,
                now,
                answer.get("msgid"),
                None,
            )
        result.messages += 1
        result.notifications += len(notes)
        session.commit()
    return result


def add_task_reminders(
    session: Session, channel: Channel, members: Iterable[_Member], now: datetime
) -> int:
    """Notes for these members' open tasks due before their next digest, or overdue and not
    reminded for a day; each task's `reminded_at` keeps a digest from repeating it."""
    by_user = {member.user_id: member for member in members if member.user_id is not None}
    if not by_user:
        return 0
    horizon = now + max(member.interval for member in by_user.values())
    tasks = session.execute(
        select(Task, Account.name)
        .outerjoin(Account, Account.id == Task.account_id)
        .where(
            Task.workspace_id == channel.workspace_id,
            Task.status == TaskStatus.OPEN,
            Task.assignee_id.in_(by_user),
            Task.due_at <= horizon,
            or_(
                Task.reminded_at.is_(None),
                (Task.due_at < now) & (Task.reminded_at <= now - OVERDUE_REMINDER_EVERY),
            ),
        )
        .order_by(Task.due_at, Task.id)
    ).all()
    added = 0
    for task, account_name in tasks:
        member = by_user[task.assignee_id]
        if task.due_at > now + member.interval:
            continue
        overdue = task.due_at < now
        when = "已逾期" if overdue else f"{_local(channel, session, task.due_at)} 到期"
        summary = f"任务「{task.title}」{when}"
        added += notify_staff(
            session,
            workspace_id=channel.workspace_id,
            channel_id=channel.id,
            staff_userid=member.userid,
            kind=TASK_REMINDER,
            text=f"{account_name}：{summary}" if account_name else summary,
            summary=summary,
            account_id=task.account_id,
            dedupe_key=f"task-remind:{task.id}:{channel.id}:{member.userid}:"
            + (now.date().isoformat() if overdue else "due"),
        )
        task.reminded_at = now
    session.flush()
    return added


def digests_due(session: Session, now: datetime | None = None) -> set[int]:
    """The WeCom channels with a member whose digest is due: pending notes (or notes held
    from a day now over) and an interval passed, or a task to remind them of."""
    now = now or utcnow()
    channels: set[int] = set()
    waiting = session.execute(
        select(
            StaffNotification.channel_id,
            StaffNotification.staff_userid,
            func.max(StaffNotification.status),  # "held" < "pending": held only if all are
        )
        .where(StaffNotification.status.in_(UNSENT))
        .group_by(StaffNotification.channel_id, StaffNotification.staff_userid)
    ).all()
    tasks = session.execute(
        select(Staff.channel_id, Staff.userid)
        .join(Task, (Task.assignee_id == Staff.user_id) & (Task.workspace_id == Staff.workspace_id))
        .where(
            Staff.active.is_(True),
            Task.status == TaskStatus.OPEN,
            Task.due_at <= now + timedelta(days=1),
            or_(
                Task.reminded_at.is_(None),
                (Task.due_at < now) & (Task.reminded_at <= now - OVERDUE_REMINDER_EVERY),
            ),
        )
        .distinct()
    ).all()
    candidates = {(c, u): status for c, u, status in waiting}
    for channel_id, userid in tasks:
        candidates.setdefault((channel_id, userid), "task")
    if not candidates:
        return channels
    settings = {
        (row.channel_id, row.userid): row
        for row in session.execute(
            select(
                Staff.channel_id,
                Staff.userid,
                Staff.digest_minutes,
                Workspace.digest_minutes.label("default_minutes"),
                Workspace.timezone,
            )
            .join(Workspace, Workspace.id == Staff.workspace_id)
            .where(Staff.channel_id.in_({c for c, _u in candidates}))
        )
    }
    lasts: dict[int, dict[str, datetime]] = {}
    for (channel_id, userid), status in candidates.items():
        if channel_id in channels:
            continue
        row = settings.get((channel_id, userid))
        minutes = (row.digest_minutes or row.default_minutes) if row else 60
        if channel_id not in lasts:
            lasts[channel_id] = _last_digests(session, channel_id, now)
        last = lasts[channel_id].get(userid)
        if last is not None and now < last + timedelta(minutes=minutes):
            continue
        held_for_tomorrow = (
            status == NotificationStatus.HELD
            and row is not None
            and last is not None
            and last >= _day_start_in(row.timezone, now)
        )
        if held_for_tomorrow:
            continue
        if status == "task":
            minutes_ahead = timedelta(minutes=minutes)
            if not _task_due_for(session, channel_id, userid, now, minutes_ahead):
                continue
        channels.add(channel_id)
    return channels


def _task_due_for(session, channel_id: int, userid: str, now: datetime, ahead) -> bool:
    return (
        session.scalar(
            select(Task.id)
            .join(
                Staff,
                (Staff.user_id == Task.assignee_id) & (Staff.workspace_id == Task.workspace_id),
            )
            .where(
                Staff.channel_id == channel_id,
                Staff.userid == userid,
                Task.status == TaskStatus.OPEN,
                Task.due_at <= now + ahead,
                or_(
                    Task.reminded_at.is_(None),
                    (Task.due_at < now) & (Task.reminded_at <= now - OVERDUE_REMINDER_EVERY),
                ),
            )
            .limit(1)
        )
        is not None
    )


def _members(session: Session, channel: Channel, workspace: Workspace) -> dict[str, _Member]:
    return {
        member.userid: _Member(
            member.userid,
            member.user_id if member.active else None,
            timedelta(minutes=member.digest_minutes or workspace.digest_minutes),
        )
        for member in session.scalars(
            select(Staff).where(
                Staff.workspace_id == channel.workspace_id, Staff.channel_id == channel.id
            )
        )
    }


def _last_digests(session: Session, channel_id: int, now: datetime) -> dict[str, datetime]:
    """Each member's last digest in the last day (no interval is longer)."""
    return {
        userid: sent_at
        for userid, sent_at in session.execute(
            select(StaffNotification.staff_userid, func.max(StaffNotification.sent_at))
            .where(
                StaffNotification.channel_id == channel_id,
                StaffNotification.sent_at >= now - timedelta(days=1),
            )
            .group_by(StaffNotification.staff_userid)
        )
    }


def _digests_since(session: Session, channel_id: int, since: datetime) -> dict[str, int]:
    """Digests per member since then: the notes of one digest share its sent_at."""
    return dict(
        session.execute(
            select(
                StaffNotification.staff_userid, func.count(func.distinct(StaffNotification.sent_at))
            )
            .where(
                StaffNotification.channel_id == channel_id,
                StaffNotification.sent_at >= since,
            )
            .group_by(StaffNotification.staff_userid)
        ).all()
    )


def _day_start(workspace: Workspace, now: datetime) -> datetime:
    return _day_start_in(workspace.timezone, now)


def _day_start_in(timezone: str, now: datetime) -> datetime:
    """The start of `now`'s calendar day in the time zone, as a UTC moment."""
    zone = ZoneInfo(timezone or "Asia/Shanghai")
    local = now.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(now.tzinfo)


def _local(channel: Channel, session: Session, moment: datetime) -> str:
    timezone = session.scalar(
        select(Workspace.timezone).where(Workspace.id == channel.workspace_id)
    )
    return moment.astimezone(ZoneInfo(timezone or "Asia/Shanghai")).strftime("%m-%d %H:%M")


def _account_names(session: Session, workspace_id: int, notes) -> dict[int, str]:
    ids = {note.account_id for note in notes if note.account_id is not None}
    if not ids:
        return {}
    return dict(
        session.execute(
            select(Account.id, Account.name).where(
                Account.workspace_id == workspace_id, Account.id.in_(ids)
            )
        ).all()
    )


def _sent_last_minute(session: Session, channel_id: int, userid: str, now) -> int:
    return session.scalar(
        select(func.count(func.distinct(StaffNotification.sent_at))).where(
            StaffNotification.channel_id == channel_id,
            StaffNotification.staff_userid == userid,
            StaffNotification.sent_at >= now - timedelta(minutes=1),
        )
    )


def digest(notes: list[StaffNotification], account_names: dict[int, str] | None = None) -> str:
    """One note as it is; several as one digest that fits one text message: a line per
    account with its entries ("华信科技：MQA；李总 · 读了《白皮书》"), then the notes about
    no account (MQA entries first)."""
    if len(notes) == 1:
        return _fit(notes[0].text)
    names = account_names or {}
    ordered = sorted(notes, key=lambda note: (note.kind not in ALWAYS_SENT, note.id))
    groups: dict[int | None, list[str]] = {}
    lines: list[str] = []
    for note in ordered:
        if note.account_id is not None and note.account_id in names:
            groups.setdefault(note.account_id, []).append(note.summary or note.text)
        else:
            lines.append(note.text)
    entries = [_account_line(names[account_id], items) for account_id, items in groups.items()]
    entries += lines
    out = [f"Harpoon：{len(notes)} 条新提醒"]
    out += [f"{n}. {entry}" for n, entry in enumerate(entries[:DIGEST_ITEMS], 1)]
    if len(entries) > DIGEST_ITEMS:
        out.append(f"……另有 {len(entries) - DIGEST_ITEMS} 条，请在 Harpoon 中查看")
    return _fit("\n".join(out))


def _account_line(name: str, items: list[str]) -> str:
    """ "华信科技：MQA；李总 读了《白皮书》；…等 12 条": an account's first entries, once each."""
    unique = list(dict.fromkeys(items))
    line = f"{name}：{'；'.join(unique[:ENTRIES_PER_ACCOUNT])}"
    if len(unique) > ENTRIES_PER_ACCOUNT:
        line += f"；…等 {len(unique)} 条"
    return line


def _fit(text: str) -> str:
    encoded = text.encode()
    if len(encoded) <= TEXT_LIMIT_BYTES:
        return text
    return encoded[: TEXT_LIMIT_BYTES - 3].decode(errors="ignore") + "…"


def tell_staff_a_target_added_them(
    session: Session, channel: Channel, contact, external_userid: str, followups: Followups
) -> None:
    """'A contact from your target account just added you': once per relation."""
    account = session.get(Account, contact.account_id) if contact.account_id else None
    if account is None or not account.is_target:
        return
    recent = utcnow() - timedelta(days=1)
    relations = session.scalars(
        select(FollowRelation).where(
            FollowRelation.channel_id == channel.id,
            FollowRelation.external_userid == external_userid,
            FollowRelation.removed_at.is_(None),
            FollowRelation.added_at >= recent,
        )
    )
    who = contact.name or external_userid
    if contact.title:
        who = f"{who}（{contact.title}）"
    for relation in relations:
        added = notify_staff(
            session,
            workspace_id=channel.workspace_id,
            channel_id=channel.id,
            staff_userid=relation.staff_userid,
            kind="target_account_add",
            text=f"目标客户「{account.name}」的 {who} 刚刚添加了你为企业微信好友。",
            dedupe_key=f"target-add:{relation.id}",
            followups=followups,
            account_id=account.id,
            summary=f"{who} 添加了你为企业微信好友",
        )
        if added and not _owned_by(session, account, channel, relation.staff_userid):
            # The account's owner hears of it too, wherever they are staff.
            notify_owner(
                session,
                account,
                kind="target_account_add",
                text=f"你负责的目标客户「{account.name}」的 {who} 添加了同事"
                f" {relation.staff_userid} 为企业微信好友。",
                dedupe_key=f"target-add-owner:{relation.id}",
                followups=followups,
                summary=f"{who} 添加了同事 {relation.staff_userid} 为企业微信好友",
            )


def _owned_by(session: Session, account, channel: Channel, staff_userid: str) -> bool:
    return account.owner_id is not None and account.owner_id == session.scalar(
        select(Staff.user_id).where(Staff.channel_id == channel.id, Staff.userid == staff_userid)
    )
