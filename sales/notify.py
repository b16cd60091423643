"""Telling a salesperson something, as a WeCom app message.

`notify_staff` / `notify_owner` only record the note (idempotent by its
dedupe key) and ask for a `send_notifications` job. The job sends each
staff member's pending notes as one message — a burst becomes one digest —
and keeps under WeCom's limit of about 30 app messages a minute per member
(past it the platform drops them silently); what must wait stays pending for
the sweeper. So does a note whose send failed transiently (core.transient: a
token refused, the platform busy, no answer): it keeps its last error and the
sweeper asks for it again; only a refusal that would be the same next time
fails it.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
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
    utcnow,
)
from models.base import insert_ignoring_conflicts
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

MESSAGES_PER_MINUTE = 30  # per member, WeCom's app-message limit
TEXT_LIMIT_BYTES = 2048  # a text app message's content
DIGEST_ITEMS = 10


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
) -> bool:
    """Record a note for one staff member; False if this dedupe key was noted before."""
    inserted = session.execute(
        insert_ignoring_conflicts(session.get_bind().dialect.name, StaffNotification.__table__)
        .values(
            workspace_id=workspace_id,
            channel_id=channel_id,
            staff_userid=staff_userid,
            kind=kind,
            text=text[:1000],
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
) -> int:
    """Notify the account's owner on every WeCom corp where they are staff; returns how many."""
    if account.owner_id is None:
        return 0
    staff = session.scalars(
        select(Staff).where(Staff.user_id == account.owner_id, Staff.active.is_(True))
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
        )
        for alert in alerts
    )


@dataclass
class NotifyResult:
    messages: int = 0
    notifications: int = 0
    deferred: int = 0
    retrying: int = 0  # a transient failure: still pending, with its error
    failed: int = 0


def send_notifications(session: Session, channel: Channel, client) -> NotifyResult:
    """Send the channel's pending notes: one message per staff member, within the limit."""
    result = NotifyResult()
    pending = session.scalars(
        select(StaffNotification)
        .where(
            StaffNotification.channel_id == channel.id,
            StaffNotification.status == NotificationStatus.PENDING,
        )
        .order_by(StaffNotification.id)
        .with_for_update(skip_locked=True)
    ).all()
    by_staff: dict[str, list[StaffNotification]] = {}
    for note in pending:
        by_staff.setdefault(note.staff_userid, []).append(note)
    now = utcnow()
    for userid, notes in by_staff.items():
        if _sent_last_minute(session, channel.id, userid, now) >= MESSAGES_PER_MINUTE:
            result.deferred += len(notes)  # the next run (or the sweeper) sends them as a digest
            continue
        try:
            answer = client.post(
                "message/send",
                data={
                    "touser": userid,
                    "msgtype": "text",
                    "agentid": int(channel.agent_id or 0),
                    "text": {"content": digest(notes)},
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


def _sent_last_minute(session: Session, channel_id: int, userid: str, now) -> int:
    return session.scalar(
        select(func.count(func.distinct(StaffNotification.msgid))).where(
            StaffNotification.channel_id == channel_id,
            StaffNotification.staff_userid == userid,
            StaffNotification.sent_at >= now - timedelta(minutes=1),
        )
    )


def digest(notes: list[StaffNotification]) -> str:
    """One note as it is; several as a numbered digest that fits one text message."""
    if len(notes) == 1:
        return _fit(notes[0].text)
    lines = [f"Harpoon：{len(notes)} 条新提醒"]
    lines += [f"{n}. {note.text}" for n, note in enumerate(notes[:DIGEST_ITEMS], 1)]
    if len(notes) > DIGEST_ITEMS:
        lines.append(f"……另有 {len(notes) - DIGEST_ITEMS} 条，请在 Harpoon 中查看")
    return _fit("\n".join(lines))


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
            )


def _owned_by(session: Session, account, channel: Channel, staff_userid: str) -> bool:
    return account.owner_id is not None and account.owner_id == session.scalar(
        select(Staff.user_id).where(Staff.channel_id == channel.id, Staff.userid == staff_userid)
    )
