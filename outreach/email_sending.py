"""The email sender: delivers the EmailMessage rows a journey step or a push planned.

A row is the email's outbox entry: it is written `planned` in the deciding transaction
(a journey step's idempotency key, or "push:<push>:<contact>"), and a sender job does the
rest after the commit, a batch at a time:

1. prepare: the batch's contacts, accounts, owners, templates, email addresses and
   suppressions in a handful of queries; each message rendered for its person. A
   suppressed address, a contact without an email address or a template that does not
   render (the reason names the variable) is `skipped` with its reason.
2. claim: the rest are marked `sending` (attempts + 1, a lease) in ONE statement, and
   that is committed BEFORE any SMTP call.
3. send: over one MailConnection for the whole batch.
4. record: sent (Message-ID), failed, or back to planned with a backoff, in batched
   UPDATEs. A 5xx refusal of the address (RCPT TO) fails the message and suppresses the
   address (bounced); a 5xx refusal of the message (DATA: too big, its content) fails that
   message only (refused); a refusal of our sender (MAIL FROM: login required, a sender
   address the server will not take) is the server's problem, not the person's: the
   batch stops and waits as for an unreachable server, nobody is suppressed.

Never twice: a row still `sending` when its lease is over (journeys) or when its push is
resumed was left by a sender that died mid-batch. It may have gone out, so it is failed
with the reason INTERRUPTED and never sent again: a lost email is the safe side of a
crash, a repeated one is not.

Temporary failures (the server unreachable, a 4xx, the session broken) put the row back
to `planned` with a backoff and the reason, up to MAX_ATTEMPTS; then it is failed. A
session that broke mid-batch sends nothing more in that batch (its rows wait out the
backoff); a 4xx for one address leaves the session going for the others.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage as EmailMessageMime
from email.utils import parseaddr

from sqlalchemy import and_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from models import (
    Account,
    Contact,
    EmailMessage,
    EmailStatus,
    EmailSuppression,
    EmailTemplate,
    IdentityKind,
    Step,
    SuppressionReason,
    User,
    utcnow,
)
from outreach.email_variables import company_of, newest_identities
from outreach.emails import (
    Composed,
    EmailTemplateError,
    Tracking,
    build_message,
    compose,
    person_variables,
    render,
)
from outreach.mail import MailConnection, Mailer, MailError, check_host

log = logging.getLogger(__name__)

BATCH = 200  # messages per SMTP session and per recording statement
MAX_ATTEMPTS = 5
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)
# Longer than a batch can take (BATCH messages at the SMTP timeout would be far longer,
# but a broken session stops the batch at its first timeout).
SEND_LEASE = timedelta(minutes=15)


class Reason:
    """Why a message was skipped or failed: the report's rows (prefixes, some with detail)."""

    NO_ADDRESS = "no_email"  # the contact has no email identity
    SUPPRESSED = "suppressed"  # "suppressed: unsubscribed" / bounced / complained
    NO_TEMPLATE = "no_template"  # the template was deleted or archived
    TEMPLATE = "template"  # "template: unknown variable x" (or its syntax error)
    NO_SERVER = "no_smtp_server"  # neither the workspace nor the service has one
    BOUNCED = "bounced"  # "bounced: 550 ..." the server refused the address for good
    REFUSED = "refused"  # "refused: 554 ..." the server refused this message (size, content)
    INTERRUPTED = "interrupted: not retried, it may have been sent"
    UNREACHABLE = "unreachable"  # "unreachable: ..." retried, then failed


@dataclass(frozen=True)
class Sender:
    """Where the workspace's email goes out and where its tracking points."""

    mailer: Mailer | None  # None: no SMTP server: messages are skipped, not stuck
    base_url: str  # Harpoon's public base, for the pixel, clicks and unsubscribe
    secret: str  # signs tracked clicks
    connect: Callable[[str], MailConnection] = MailConnection


@dataclass
class SendResult:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    retrying: int = 0
    interrupted: int = 0
    skipped_by_reason: dict = field(default_factory=dict)
    unreachable: bool = False  # the server could not be reached (or the session broke)


# --- journeys' emails (push_id IS NULL) ---------------------------------------------------


def deliver_due(
    session: Session,
    workspace_id: int,
    sender: Sender,
    now: Callable[[], datetime] = utcnow,
    *,
    batch_size: int = BATCH,
    max_batches: int = 10,
) -> tuple[SendResult, bool]:
    """Send the workspace's due journey emails. Returns what became of them and whether
    due rows are left for another run."""
    result = SendResult()
    stale = _due_journey_rows(workspace_id, now(), EmailStatus.SENDING)
    result.interrupted += recover_interrupted(session, workspace_id, stale)
    for _ in range(max_batches):
        query = (
            select(EmailMessage.id)
            .where(*_due_journey_rows(workspace_id, now(), EmailStatus.PLANNED))
            .order_by(EmailMessage.next_attempt_at, EmailMessage.id)
            .limit(batch_size)
        )
        ids = list(session.scalars(_lock(session, query)))
        if not ids:
            return result, False
        send_batch(session, workspace_id, ids, sender, now, result)
        if result.unreachable:  # the rest wait out the backoff, not one timeout each
            return result, False
    return result, True


def _due_journey_rows(workspace_id: int, now: datetime, status: str) -> list:
    return [
        EmailMessage.workspace_id == workspace_id,
        EmailMessage.push_id.is_(None),
        EmailMessage.status == status,
        EmailMessage.next_attempt_at <= now,
    ]


def due_workspaces(session: Session, now: datetime | None = None) -> list[int]:
    """Workspaces with journey emails due (planned, or sending past the lease): what the
    sweeper asks a send_emails job for."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(EmailMessage.workspace_id)
            .where(
                EmailMessage.push_id.is_(None),
                EmailMessage.status.in_((EmailStatus.PLANNED, EmailStatus.SENDING)),
                EmailMessage.next_attempt_at <= now,
            )
            .distinct()
        )
    )


def recover_interrupted(session: Session, workspace_id: int, where: list) -> int:
    """Rows a dead sender left `sending`: failed, never sent again (see the module)."""
    query = select(EmailMessage.id).where(EmailMessage.workspace_id == workspace_id, *where)
    ids = list(session.scalars(_lock(session, query)))
    if ids:
        log.warning("emails %s were left sending by a sender that died", ids[:20])
        _record_final(session, workspace_id, ids, EmailStatus.FAILED, Reason.INTERRUPTED)
        session.commit()
    return len(ids)


def _lock(session: Session, query):
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


# --- one batch ------------------------------------------------------------------------------


@dataclass
class _Ready:
    id: int
    address: str
    subject: str
    message: Composed | EmailMessageMime
    step_id: int | None
    attempts: int


def send_batch(
    session: Session,
    workspace_id: int,
    ids: list[int],
    sender: Sender,
    now: Callable[[], datetime],
    result: SendResult,
) -> None:
    """Prepare, claim (committed), send over one session, record (committed)."""
    ready = claim_batch(session, workspace_id, ids, sender, now, result)
    if ready:
        record_batch(session, workspace_id, ready, send_ready(ready, sender), now(), result)


def claim_batch(
    session: Session,
    workspace_id: int,
    ids: list[int],
    sender: Sender,
    now: Callable[[], datetime],
    result: SendResult,
) -> list["_Ready"]:
    """The batch's messages built, the skipped recorded, the rest marked `sending`: all
    committed before the caller sends what this returns (send_ready, which touches no
    session and may run on another thread). Only rows still `planned` are claimed, and
    only those this claim took are returned: a row another worker claimed meanwhile is
    theirs to send."""
    ready, skipped = _prepare(session, workspace_id, ids, sender)
    for reason, skipped_ids in skipped.items():
        _record_final(session, workspace_id, skipped_ids, EmailStatus.SKIPPED, reason)
        result.skipped += len(skipped_ids)
        key = reason.split(":")[0]
        result.skipped_by_reason[key] = result.skipped_by_reason.get(key, 0) + len(skipped_ids)
    if ready:
        claimed = set(
            session.scalars(
                update(EmailMessage)
                .where(
                    EmailMessage.workspace_id == workspace_id,
                    EmailMessage.id.in_([item.id for item in ready]),
                    EmailMessage.status == EmailStatus.PLANNED,
                )
                .values(
                    status=EmailStatus.SENDING,
                    attempts=EmailMessage.attempts + 1,
                    next_attempt_at=now() + SEND_LEASE,
                )
                .returning(EmailMessage.id),  # PostgreSQL and SQLite (3.35+) alike
                execution_options={"synchronize_session": False},
            )
        )
        ready = [item for item in ready if item.id in claimed]
    session.commit()  # the claim is on record before any SMTP call
    return ready


def record_batch(
    session: Session,
    workspace_id: int,
    ready: list["_Ready"],
    outcomes: list["_Outcome"],
    now: datetime,
    result: SendResult,
) -> None:
    _record(session, workspace_id, ready, outcomes, now, result)
    session.commit()


def _prepare(
    session: Session, workspace_id: int, ids: list[int], sender: Sender
) -> tuple[list[_Ready], dict[str, list[int]]]:
    """Each planned row's MIME message, or why it is skipped. A few set-based queries."""
    rows = session.execute(
        select(
            EmailMessage.id,
            EmailMessage.token,
            EmailMessage.contact_id,
            EmailMessage.template_id,
            EmailMessage.to_address,
            EmailMessage.step_id,
            EmailMessage.attempts,
        ).where(
            EmailMessage.workspace_id == workspace_id,
            EmailMessage.id.in_(ids),
            EmailMessage.status == EmailStatus.PLANNED,
        )
    ).all()
    contact_ids = {row.contact_id for row in rows}
    people = {
        person.id: person
        for person in session.execute(
            select(
                Contact.id,
                Contact.name,
                Contact.title,
                Account.name.label("account_name"),
                Contact.company,
                User.name.label("owner"),
            )
            .outerjoin(Account, Account.id == Contact.account_id)
            .outerjoin(User, User.id == Account.owner_id)
            .where(Contact.workspace_id == workspace_id, Contact.id.in_(contact_ids))
        )
    }
    # The preview's rule (outreach.email_variables): what is previewed is what is sent.
    identities = newest_identities(session, workspace_id, contact_ids)
    addresses = {
        key: found[IdentityKind.EMAIL]
        for key, found in identities.items()
        if IdentityKind.EMAIL in found
    }
    phones = {key: found.get(IdentityKind.PHONE) for key, found in identities.items()}
    templates = {
        template.id: template
        for template in session.execute(
            select(EmailTemplate.id, EmailTemplate.subject, EmailTemplate.body_html).where(
                EmailTemplate.workspace_id == workspace_id,
                EmailTemplate.id.in_({row.template_id for row in rows}),
                EmailTemplate.archived_at.is_(None),
            )
        )
    }
    wanted = {(row.to_address or addresses.get(row.contact_id) or "").lower() for row in rows}
    suppressed = dict(
        session.execute(
            select(EmailSuppression.address, EmailSuppression.reason).where(
                EmailSuppression.workspace_id == workspace_id,
                EmailSuppression.address.in_(wanted - {""}),
            )
        ).all()
    )
    ready: list[_Ready] = []
    skipped: dict[str, list[int]] = {}
    for row in rows:
        address = row.to_address or addresses.get(row.contact_id)
        person = people.get(row.contact_id)
        template = templates.get(row.template_id)
        reason = None
        if not address or person is None:
            reason = Reason.NO_ADDRESS
        elif address.lower() in suppressed:
            reason = f"{Reason.SUPPRESSED}: {suppressed[address.lower()]}"
        elif template is None:
            reason = Reason.NO_TEMPLATE
        elif sender.mailer is None:
            reason = Reason.NO_SERVER
        if reason is None:
            variables = person_variables(
                name=person.name,
                company=company_of(person.account_name, person.company),
                title=person.title,
                email=address,
                phone=phones.get(row.contact_id),
                owner=person.owner,
            )
            tracking = Tracking(sender.base_url, sender.secret, row.token)
            variables["unsubscribe_url"] = tracking.unsubscribe_url
            try:
                rendered = render(template.subject, template.body_html, variables)
            except EmailTemplateError as exc:
                reason = _template_reason(exc)
            else:
                message = compose(
                    rendered, sender=sender.mailer.sender, to=address, tracking=tracking
                ) or build_message(  # an address beyond ASCII: the email package writes it
                    rendered, sender=sender.mailer.sender, to=address, tracking=tracking
                )
                ready.append(
                    _Ready(row.id, address, rendered.subject, message, row.step_id, row.attempts)
                )
                continue
        skipped.setdefault(reason, []).append(row.id)
    return ready, skipped


def _template_reason(exc: EmailTemplateError) -> str:
    if exc.variable:
        return f"{Reason.TEMPLATE}: unknown variable {exc.variable}"[:300]
    if exc.line:
        return f"{Reason.TEMPLATE}: line {exc.line}: {exc}"[:300]
    return f"{Reason.TEMPLATE}: {exc}"[:300]


@dataclass(frozen=True)
class _Outcome:
    status: str  # sent | failed | retry
    message_id: str | None = None
    reason: str | None = None
    bounced: bool = False  # failed because the address does not take mail: suppress it


def send_ready(ready: list[_Ready], sender: Sender) -> list[_Outcome]:
    """One SMTP session for the batch; off the session's transaction (nothing to roll
    back if the server is slow), and off the database altogether."""
    try:
        if sender.mailer.guarded:  # a workspace's own server: checked before connecting
            check_host(sender.mailer.url)
        connection = sender.connect(sender.mailer.url)
    except MailError as exc:
        reason = f"{Reason.UNREACHABLE}: {exc}"[:300]
        return [_Outcome("retry", reason=reason)] * len(ready)
    outcomes: list[_Outcome] = []
    broken = None
    envelope_sender = parseaddr(sender.mailer.sender)[1]
    with connection:
        for item in ready:
            if broken is not None:
                outcomes.append(_Outcome("retry", reason=broken))
                continue
            try:
                if isinstance(item.message, Composed):
                    connection.send_bytes(envelope_sender, item.address, item.message.data)
                    message_id = item.message.message_id
                else:
                    message_id = connection.send(item.message)
                outcomes.append(_Outcome("sent", message_id=message_id))
            except MailError as exc:
                if exc.bounced:
                    reason = f"{Reason.BOUNCED}: {exc}"[:300]
                    outcomes.append(_Outcome("failed", reason=reason, bounced=True))
                elif exc.stage == MailError.DATA and exc.permanent:
                    outcomes.append(_Outcome("failed", reason=f"{Reason.REFUSED}: {exc}"[:300]))
                elif exc.code is not None and exc.stage != MailError.SENDER:
                    outcomes.append(_Outcome("retry", reason=str(exc)[:300]))  # a 4xx: go on
                else:  # the session broke or refuses our sender: the rest of the batch waits
                    broken = f"{Reason.UNREACHABLE}: {exc}"[:300]
                    outcomes.append(_Outcome("retry", reason=broken))
    return outcomes


def _record(
    session: Session,
    workspace_id: int,
    ready: list[_Ready],
    outcomes: list[_Outcome],
    now: datetime,
    result: SendResult,
) -> None:
    """Every outcome of the batch, in a few statements."""
    sent_rows, bounced, retry_rows, final_failed = [], [], [], {}
    for item, outcome in zip(ready, outcomes, strict=True):
        if outcome.status == "sent":
            sent_rows.append(
                {
                    "id": item.id,
                    "status": EmailStatus.SENT,
                    "reason": None,
                    "message_id": outcome.message_id,
                    "to_address": item.address,
                    "subject": item.subject[:200],
                    "sent_at": now,
                }
            )
        elif outcome.status == "failed":
            final_failed.setdefault(outcome.reason, []).append(item.id)
            if outcome.bounced:
                bounced.append((item.address.lower(), item.id, outcome.reason))
        elif item.attempts + 1 >= MAX_ATTEMPTS:
            final_failed.setdefault(outcome.reason, []).append(item.id)
        else:
            backoff = min(RETRY_BASE * 2**item.attempts, RETRY_MAX)
            retry_rows.append(
                {
                    "id": item.id,
                    "status": EmailStatus.PLANNED,
                    "reason": outcome.reason,
                    "next_attempt_at": now + backoff,
                }
            )
            result.unreachable |= outcome.reason.startswith(Reason.UNREACHABLE)
    if sent_rows:
        session.execute(update(EmailMessage), sent_rows)
        result.sent += len(sent_rows)
    if retry_rows:
        session.execute(update(EmailMessage), retry_rows)
        result.retrying += len(retry_rows)
    for reason, failed_ids in final_failed.items():
        _record_final(session, workspace_id, failed_ids, EmailStatus.FAILED, reason)
        result.failed += len(failed_ids)
    if bounced:
        _suppress(session, workspace_id, bounced)
    step_ids = [item.step_id for item in ready if item.step_id is not None]
    if step_ids:
        _log_steps(session, workspace_id, step_ids)


def _record_final(
    session: Session, workspace_id: int, ids: list[int], status: str, reason: str
) -> None:
    """Skipped or failed for good, with the reason; their journey steps say so."""
    session.execute(
        update(EmailMessage)
        .where(EmailMessage.workspace_id == workspace_id, EmailMessage.id.in_(ids))
        .values(status=status, reason=reason[:300], next_attempt_at=None),
        execution_options={"synchronize_session": False},
    )
    step_ids = session.scalars(
        select(EmailMessage.step_id).where(
            EmailMessage.workspace_id == workspace_id,
            EmailMessage.id.in_(ids),
            EmailMessage.step_id.isnot(None),
        )
    ).all()
    if step_ids:
        _log_steps(session, workspace_id, list(step_ids))


def _suppress(session: Session, workspace_id: int, bounced: list[tuple[str, int, str]]) -> None:
    """A hard bounce: the address is never mailed again in this workspace."""
    upsert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    rows = {
        address: {
            "workspace_id": workspace_id,
            "address": address,
            "reason": SuppressionReason.BOUNCED,
            "detail": reason[:300],
            "message_id": message_id,
            "created_at": utcnow(),
        }
        for address, message_id, reason in bounced
    }
    session.execute(upsert(EmailSuppression).values(list(rows.values())).on_conflict_do_nothing())


def _log_steps(session: Session, workspace_id: int, step_ids: list[int]) -> None:
    """The journey steps these emails came from: done when sent, failed (or still queued
    while a retry waits) with the reason, like journeys.delivery does for the outbox."""
    rows = session.execute(
        select(EmailMessage.step_id, EmailMessage.status, EmailMessage.reason).where(
            EmailMessage.workspace_id == workspace_id, EmailMessage.step_id.in_(step_ids)
        )
    ).all()
    session.flush()
    for step_id, status, reason in rows:
        step = session.get(Step, step_id)
        if step is None:
            continue
        if status == EmailStatus.SENT:
            step.outcome = "done"
            step.detail = {**step.detail, "email": "sent", "error": None}
        elif status in (EmailStatus.SKIPPED, EmailStatus.FAILED):
            step.outcome = "failed"
            step.detail = {**step.detail, "email": status, "error": reason, "message": False}
        else:
            step.detail = {**step.detail, "email": "retrying", "error": reason}


# --- pushes -------------------------------------------------------------------------------


class RateLimiter:
    """At most `per_minute` messages a minute (0: no limit): after each batch, wait until
    the messages sent so far are within the rate."""

    def __init__(self, per_minute: int, pace: Callable[[float], None] = time.sleep):
        self.per_minute, self.pace = per_minute, pace
        self.started = time.monotonic()
        self.sent = 0

    def wait(self, just_sent: int) -> None:
        self.sent += just_sent
        if self.per_minute <= 0:
            return
        ahead = self.sent * 60.0 / self.per_minute - (time.monotonic() - self.started)
        if ahead > 0:
            self.pace(ahead)


def due_push_batch(session: Session, push_id: int, workspace_id: int, now: datetime, size: int):
    """The next planned messages of a push that are due, in id order; on PostgreSQL rows
    another transaction holds are passed over (the claim checks `planned` again)."""
    query = (
        select(EmailMessage.id)
        .where(
            EmailMessage.workspace_id == workspace_id,
            EmailMessage.push_id == push_id,
            EmailMessage.status == EmailStatus.PLANNED,
            EmailMessage.next_attempt_at <= now,
        )
        .order_by(EmailMessage.id)
        .limit(size)
    )
    return list(session.scalars(_lock(session, query)))


def push_waiting(session: Session, push_id: int, workspace_id: int) -> bool:
    """Messages of the push still planned (a retry waiting out its backoff) or sending (a
    batch in flight, or one a dead worker left that is failed once its lease is over)."""
    return (
        session.scalar(
            select(EmailMessage.id)
            .where(
                and_(
                    EmailMessage.workspace_id == workspace_id,
                    EmailMessage.push_id == push_id,
                    EmailMessage.status.in_((EmailStatus.PLANNED, EmailStatus.SENDING)),
                )
            )
            .limit(1)
        )
        is not None
    )
