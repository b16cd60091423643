"""Email pushes: one email template to a segment's members who have an email address.

Planning is one INSERT ... SELECT into email_messages: every targeted contact gets a row,
`planned` with their address, or `skipped` with the reason (no address, a suppressed
one). Dispatch sends the planned rows in batches through outreach.email_sending (one SMTP
session and a few statements a batch) under HARPOON_EMAIL_RATE_PER_MINUTE. The push's
heartbeat is its lock, as for OA pushes: a push whose worker died is resumed by the
sweeper (pushes.due_pushes), and the batch that was in flight is failed as
"interrupted", never sent twice. An unreachable server puts every planned message of the
push back a while (one statement) and the sweeper resumes it; after MAX_ATTEMPTS tries a
message is failed with the reason.
"""

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta

from sqlalchemy import String, case, cast, func, insert, literal, select, text, update
from sqlalchemy.orm import Session

from models import (
    EmailMessage,
    EmailStatus,
    EmailSuppression,
    EmailTemplate,
    Identity,
    IdentityKind,
    Mechanism,
    Push,
    PushStatus,
    utcnow,
)
from outreach.email_sending import (
    BATCH,
    MAX_ATTEMPTS,
    RETRY_BASE,
    RETRY_MAX,
    RateLimiter,
    Reason,
    Sender,
    SendResult,
    claim_batch,
    due_push_batch,
    push_waiting,
    record_batch,
    recover_interrupted,
    send_ready,
)
from outreach.pushes import REPORT_EVERY, PushError, audience_query, claim_push

EMAIL = Mechanism.EMAIL.value
# SMTP sessions sending at once: the server works on one batch while the next is on its way.
WIRES = 3
# The heartbeat is the push's lock (pushes.STALE_AFTER): renewed at least this often while
# the dispatcher waits, on the rate limit or on a slow batch.
BEAT_EVERY = timedelta(minutes=1)


def is_email(push: Push) -> bool:
    return (push.content or {}).get("type") == "email"


def _token(session: Session):
    """32 random characters per row, made by the database (a planning INSERT has no
    Python per row): a v4 UUID's hex on PostgreSQL, 16 random bytes on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return func.replace(cast(func.gen_random_uuid(), String), "-", "")
    return func.lower(func.hex(func.randomblob(16)))


def plan_email_push(session: Session, push: Push, now: datetime) -> None:
    """Every targeted contact's message, planned or skipped with its reason: one
    statement. Raises PushError when the template is gone."""
    template_id = push.content.get("email_template_id")
    template = session.scalar(
        select(EmailTemplate).where(
            EmailTemplate.id == template_id,
            EmailTemplate.workspace_id == push.workspace_id,
            EmailTemplate.archived_at.is_(None),
        )
    )
    if template is None:
        raise PushError("the push's email template no longer exists")
    audience = audience_query(session, push, now).subquery()
    newest = (  # each contact's newest address, as the preview shows (email_variables)
        select(func.max(Identity.id).label("id"))
        .where(Identity.workspace_id == push.workspace_id, Identity.kind == IdentityKind.EMAIL)
        .group_by(Identity.contact_id)
        .subquery()
    )
    addresses = (
        select(Identity.contact_id, func.lower(Identity.value).label("address"))
        .join(newest, newest.c.id == Identity.id)
        .subquery()
    )
    suppressed = (
        select(EmailSuppression.address, EmailSuppression.reason)
        .where(EmailSuppression.workspace_id == push.workspace_id)
        .subquery()
    )
    status = case(
        (addresses.c.address.is_(None), literal(EmailStatus.SKIPPED.value)),
        (suppressed.c.address.isnot(None), literal(EmailStatus.SKIPPED.value)),
        else_=literal(EmailStatus.PLANNED.value),
    )
    reason = case(
        (addresses.c.address.is_(None), literal(Reason.NO_ADDRESS)),
        (
            suppressed.c.address.isnot(None),
            literal(f"{Reason.SUPPRESSED}: ", String) + suppressed.c.reason,
        ),
        else_=None,
    )
    rows = (
        select(
            literal(push.workspace_id),
            literal(f"push:{push.id}:", String) + cast(audience.c.id, String),
            _token(session),
            audience.c.id,
            literal(template.id),
            literal(push.id),
            addresses.c.address,
            status,
            reason,
            literal(0),
            literal(now),
            literal(now),
            literal(0),
            literal(0),
        )
        .select_from(audience)
        .outerjoin(addresses, addresses.c.contact_id == audience.c.id)
        .outerjoin(suppressed, suppressed.c.address == addresses.c.address)
    )
    session.execute(
        insert(EmailMessage).from_select(
            [
                "workspace_id",
                "idempotency_key",
                "token",
                "contact_id",
                "template_id",
                "push_id",
                "to_address",
                "status",
                "reason",
                "attempts",
                "created_at",
                "next_attempt_at",
                "open_count",
                "click_count",
            ],
            rows,
        )
    )
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ANALYZE email_messages"))
    push.audience = {"segment_id": push.segment_id, "email_template_id": template.id}
    push.targeted = session.scalar(
        select(func.count()).where(
            EmailMessage.workspace_id == push.workspace_id, EmailMessage.push_id == push.id
        )
    )
    push.report = email_report(session, push)


def run_email_push(
    session: Session,
    push_id: int,
    sender: Sender,
    threshold: int,
    rate_per_minute: int,
    *,
    now: Callable[[], datetime] = utcnow,
    pace: Callable[[float], None] = time.sleep,
    batch_size: int = BATCH,
) -> str:
    """Plan (once) and send a due email push; resume a sending one. Returns its status
    ("not_due" when another worker holds it or it is not due)."""
    if not claim_push(session, push_id, now()):
        return "not_due"
    push = session.get(Push, push_id)
    session.refresh(push)
    if push.status == PushStatus.SCHEDULED:
        try:
            plan_email_push(session, push, now())
        except PushError as exc:
            session.rollback()
            push.status, push.error, push.finished_at = PushStatus.FAILED, str(exc)[:500], now()
            session.commit()
            return push.status
        if push.targeted > threshold and push.approved_at is None:
            session.rollback()  # the audience grew past the threshold since it was submitted
            push.status = PushStatus.AWAITING_APPROVAL
            session.commit()
            return push.status
        push.status, push.started_at = PushStatus.SENDING, now()
        session.commit()
    dispatch_email_push(
        session, push, sender, rate_per_minute, now=now, pace=pace, batch_size=batch_size
    )
    return push.status


def dispatch_email_push(
    session: Session,
    push: Push,
    sender: Sender,
    rate_per_minute: int,
    *,
    now: Callable[[], datetime] = utcnow,
    pace: Callable[[float], None] = time.sleep,
    batch_size: int = BATCH,
) -> SendResult:
    """Send the push's planned messages, a batch at a time, renewing the heartbeat."""
    push_id, workspace_id = push.id, push.workspace_id
    result = SendResult()
    # Rows left `sending` past their lease: a dead worker's (a live one renews the push's
    # heartbeat and records its batches well within the lease).
    left = [
        EmailMessage.push_id == push_id,
        EmailMessage.status == EmailStatus.SENDING,
        EmailMessage.next_attempt_at <= now(),
    ]
    result.interrupted = recover_interrupted(session, workspace_id, left)

    def beat() -> None:
        push.heartbeat_at = now()
        session.commit()

    def pace_beating(seconds: float) -> None:
        """The rate limit's wait, in chunks, the heartbeat renewed after each."""
        chunk = BEAT_EVERY.total_seconds()
        while seconds > 0:
            pace(min(seconds, chunk))
            seconds -= chunk
            beat()

    def outcomes_of(future: Future) -> list:
        """A batch's outcomes, the heartbeat renewed while the server is slow."""
        while True:
            try:
                return future.result(timeout=BEAT_EVERY.total_seconds())
            except TimeoutError:
                beat()

    limiter = RateLimiter(rate_per_minute, pace_beating)
    reported_at = now()
    # While batches are on the wire (threads, each with its own SMTP session and no
    # database), the next is prepared and claimed here: its rows are `sending`, committed,
    # before it goes out. A crash leaves at most WIRES + 1 batches in flight (all failed as
    # interrupted on resume, never repeated).
    with ThreadPoolExecutor(max_workers=WIRES) as wire:
        in_flight: deque[tuple[list, Future]] = deque()
        while True:
            push.heartbeat_at = now()
            ids = (
                []
                if result.unreachable
                else due_push_batch(session, push_id, workspace_id, now(), batch_size)
            )
            ready = claim_batch(session, workspace_id, ids, sender, now, result) if ids else []
            # Record what came back: the oldest first, all of them once nothing is left.
            while in_flight and (len(in_flight) >= WIRES or not ready or in_flight[0][1].done()):
                batch, outcomes = in_flight.popleft()
                sent_before = result.sent
                record_batch(session, workspace_id, batch, outcomes_of(outcomes), now(), result)
                limiter.wait(result.sent - sent_before)
            if ready and not result.unreachable:
                in_flight.append((ready, wire.submit(send_ready, ready, sender)))
            elif ready:  # the server went away meanwhile: claimed, not sent, so planned again
                _unclaim(session, workspace_id, ready)
            if not in_flight and not ids:
                break
            if now() - reported_at >= REPORT_EVERY:  # the page's progress, not per batch
                push.report, reported_at = email_report(session, push), now()
                session.commit()
    if result.unreachable:
        _back_off(session, push, now())
    push.heartbeat_at = now()
    if not push_waiting(session, push_id, workspace_id):
        push.status, push.finished_at = PushStatus.SENT, now()
    # else: retries wait out their backoff; the sweeper resumes the push (due_pushes)
    push.report = email_report(session, push)
    session.commit()
    return result


def _unclaim(session: Session, workspace_id: int, ready: list) -> None:
    """A claimed batch that was never handed to the server: planned again, its try
    not counted."""
    session.execute(
        update(EmailMessage)
        .where(
            EmailMessage.workspace_id == workspace_id,
            EmailMessage.id.in_([item.id for item in ready]),
            EmailMessage.status == EmailStatus.SENDING,
        )
        .values(status=EmailStatus.PLANNED, attempts=EmailMessage.attempts - 1),
        execution_options={"synchronize_session": False},
    )
    session.commit()


def _back_off(session: Session, push: Push, now: datetime) -> None:
    """The server is unreachable: every planned message of the push counts a try and
    waits; those out of tries fail with the reason. Two statements, whatever the size."""
    last_reason = session.scalar(
        select(EmailMessage.reason)
        .where(
            EmailMessage.workspace_id == push.workspace_id,
            EmailMessage.push_id == push.id,
            EmailMessage.status == EmailStatus.PLANNED,
            EmailMessage.reason.like(f"{Reason.UNREACHABLE}%"),
        )
        .limit(1)
    )
    reason = last_reason or Reason.UNREACHABLE
    attempts = session.scalar(
        select(func.max(EmailMessage.attempts)).where(
            EmailMessage.workspace_id == push.workspace_id,
            EmailMessage.push_id == push.id,
            EmailMessage.status == EmailStatus.PLANNED,
        )
    )
    backoff = min(RETRY_BASE * 2 ** (attempts or 0), RETRY_MAX)
    planned = [
        EmailMessage.workspace_id == push.workspace_id,
        EmailMessage.push_id == push.id,
        EmailMessage.status == EmailStatus.PLANNED,
    ]
    session.execute(
        update(EmailMessage)
        .where(*planned, EmailMessage.next_attempt_at <= now)  # not the batch just tried
        .values(attempts=EmailMessage.attempts + 1, reason=reason, next_attempt_at=now + backoff),
        execution_options={"synchronize_session": False},
    )
    session.execute(
        update(EmailMessage)
        .where(*planned, EmailMessage.attempts >= MAX_ATTEMPTS)
        .values(status=EmailStatus.FAILED, next_attempt_at=None),
        execution_options={"synchronize_session": False},
    )
    session.commit()


def _reason_kind(column):
    """A reason's kind for the report: a bounce's or an outage's text varies by message."""
    return case(
        (column.like(f"{Reason.BOUNCED}%"), literal(Reason.BOUNCED)),
        (column.like(f"{Reason.REFUSED}%"), literal(Reason.REFUSED)),
        (column.like(f"{Reason.UNREACHABLE}%"), literal(Reason.UNREACHABLE)),
        (column.like(f"{Reason.TEMPLATE}%"), literal(Reason.TEMPLATE)),
        (column.like("4%"), literal("temporary")),
        else_=column,
    )


def email_report(session: Session, push: Push) -> dict:
    """The push's report from two grouped queries: targeted, planned/sent (as OA pushes
    report per mechanism), skipped and failed per reason, opened and clicked."""
    report = {"targeted": 0, "planned": {}, "sent": {}, "skipped": {}, "failed": {}}
    kind = _reason_kind(EmailMessage.reason).label("kind")
    mine = [EmailMessage.workspace_id == push.workspace_id, EmailMessage.push_id == push.id]
    rows = session.execute(
        select(EmailMessage.status, kind, func.count())
        .where(*mine)
        .group_by(EmailMessage.status, kind)
    ).all()
    for status, reason, count in rows:
        report["targeted"] += count
        if status == EmailStatus.SKIPPED:
            report["skipped"][reason] = report["skipped"].get(reason, 0) + count
            continue
        report["planned"][EMAIL] = report["planned"].get(EMAIL, 0) + count
        if status in (EmailStatus.SENT, EmailStatus.BOUNCED):
            report["sent"][EMAIL] = report["sent"].get(EMAIL, 0) + count
        if status in (EmailStatus.FAILED, EmailStatus.BOUNCED):
            reason = reason or status
            report["failed"][reason] = report["failed"].get(reason, 0) + count
    opened, clicked = session.execute(
        select(func.count(EmailMessage.opened_at), func.count(EmailMessage.clicked_at)).where(*mine)
    ).one()
    report["delivered"] = report["sent"].get(EMAIL, 0)
    report["opened"], report["clicked"] = int(opened), int(clicked)
    return report
