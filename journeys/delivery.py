"""The sender: delivers what journeys decided (journeys.runner wrote it to the outbox) and
logs the outcome on the journey step.

`deliver_due` claims a workspace's due rows (SKIP LOCKED, so senders share them), marks
them `sending` and commits before any call: a sender that dies mid-call leaves the row
`sending`, and once its lease is over a WeChat message is failed, never sent twice ("it
may have been sent"), while a webhook is delivered again with the same delivery id
(receivers drop repeats). A transient failure (core.transient) leaves the row pending
with a backoff, up to MAX_ATTEMPTS. Each destination (an OA, a webhook host) is sent to
on its own thread, one row after another: once it fails transiently its other rows wait
out the backoff; once it answers slowly they go in the next run (queued behind the
work waiting meanwhile), so a slow endpoint still gets its deliveries, one job never
holds a worker for long, and no destination ever waits for another.
"""

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.outbound import Outbound, Refused, Unreachable
from core.references import scoped_get
from core.transient import is_transient, may_have_gone_out, transient_answer
from crm.contacts import live
from journeys.actions import WEBHOOK_NO_SECRET, WEBHOOK_REFUSED, WEBHOOK_UNREACHABLE
from journeys.webhooks import delivery_headers, signing_secrets
from models import Channel, Contact, Material, OutboxItem, OutboxStatus, Step, utcnow
from outreach import materials
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

# Longer than a run can spend on one claimed row's destination: a row still `sending`
# after it was left by a sender that died.
SEND_LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 6
RETRY_BASE = timedelta(seconds=30)
RETRY_MAX = timedelta(hours=1)
SLOW_SECONDS = 3.0  # a call this slow: the destination's other rows go in the next run
MAX_THREADS = 8  # destinations sent to at once
INTERRUPTED = "interrupted: not retried, it may have been sent"
NO_ANSWER = "no answer: not retried, it may have been sent"
UNPREPARED = "could not be prepared"
UNEXPECTED = "unexpected error: not retried"


@dataclass
class Platform:
    """What the sender reaches outside with: an OA client for a channel, and the outbound
    client webhooks go through (public addresses only, unless allow-listed). The app
    composes it; tests point it at the sandbox and at receivers they allow-list."""

    oa_client: Callable[[Channel], object]
    outbound: Outbound = field(default_factory=Outbound)


@dataclass
class DeliveryResult:
    sent: int = 0
    failed: int = 0
    retrying: int = 0  # a transient failure: pending again, with a backoff
    deferred: int = 0  # their destination backed off in this run
    interrupted: int = 0  # left `sending` by a sender that died
    more: bool = False  # stopped at its share: another run is asked for


@dataclass(frozen=True)
class Attempt:
    """What one call came to: sent, failed (final), retry (transient) or deferred."""

    status: str
    detail: dict = field(default_factory=dict)
    error: str | None = None


DEFERRED = Attempt("deferred")
Call = Callable[[], Attempt]


def deliver_due(
    session: Session,
    workspace_id: int,
    platform: Platform,
    now: Callable[[], datetime] = utcnow,
    *,
    batch_size: int = 50,
    max_batches: int = 20,
    slow_seconds: float = SLOW_SECONDS,
) -> DeliveryResult:
    """Send the workspace's due outbox rows; returns what became of them."""
    result = DeliveryResult()
    _recover_interrupted(session, workspace_id, now(), result)
    _upload_library_items(session, workspace_id, platform, now())
    backed_off: dict[str, datetime] = {}  # destination -> when it may be tried again
    for _ in range(max_batches):
        rows = _claim(session, workspace_id, now(), batch_size, set(backed_off))
        if not rows:
            break
        calls: dict[str, list[tuple[int, Call]]] = {}
        ready: list[tuple[OutboxItem, Attempt]] = []
        for row in rows:
            prepared = _prepare_row(session, row, platform, now())
            if isinstance(prepared, Attempt):
                ready.append((row, prepared))
            else:
                calls.setdefault(row.destination, []).append((row.id, prepared))
            row.status, row.attempts = OutboxStatus.SENDING, row.attempts + 1
            row.next_attempt_at = now() + SEND_LEASE
        session.commit()  # the claim is on record before any call
        for row, attempt in ready:
            _record(session, row, attempt, now(), result, backed_off)
        session.commit()
        by_id = {row.id: row for row in rows}
        with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(calls) or 1)) as pool:
            futures = [
                pool.submit(_send_in_turn, destination_calls, slow_seconds)
                for destination_calls in calls.values()
            ]
            for future in as_completed(futures):
                attempts, slow = future.result()
                for row_id, attempt in attempts:
                    row = by_id[row_id]
                    if slow:  # its other rows go in the next run, after the queue's others
                        backed_off.setdefault(row.destination, now())
                        result.more = True
                    _record(session, row, attempt, now(), result, backed_off)
                session.commit()  # each destination's outcomes as soon as it is done
    else:
        result.more = True
    result.deferred += _defer_backed_off(session, workspace_id, backed_off)
    session.commit()
    return result


def due_workspaces(session: Session, now: datetime | None = None) -> list[int]:
    """Workspaces with outbox rows due by `now` (pending, or `sending` past the lease):
    what the sweeper asks a deliver_outbox job for."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(OutboxItem.workspace_id)
            .where(
                OutboxItem.status.in_((OutboxStatus.PENDING, OutboxStatus.SENDING)),
                OutboxItem.next_attempt_at <= now,
            )
            .distinct()
        )
    )


def _lock(session: Session, query):
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


def _claim(
    session: Session, workspace_id: int, now: datetime, limit: int, skip: set[str]
) -> list[OutboxItem]:
    query = select(OutboxItem).where(
        OutboxItem.workspace_id == workspace_id,
        OutboxItem.status == OutboxStatus.PENDING,
        OutboxItem.next_attempt_at <= now,
    )
    if skip:
        query = query.where(OutboxItem.destination.not_in(skip))
    query = query.order_by(OutboxItem.next_attempt_at, OutboxItem.id).limit(limit)
    return list(session.scalars(_lock(session, query)))


def _recover_interrupted(
    session: Session, workspace_id: int, now: datetime, result: DeliveryResult
) -> None:
    """Rows a dead sender left `sending`: a webhook is due again (same delivery id), a
    WeChat message is failed (it may have reached the person)."""
    stale = session.scalars(
        _lock(
            session,
            select(OutboxItem).where(
                OutboxItem.workspace_id == workspace_id,
                OutboxItem.status == OutboxStatus.SENDING,
                OutboxItem.next_attempt_at <= now,
            ),
        )
    ).all()
    for row in stale:
        log.warning("outbox %s (%s) was left sending by a sender that died", row.id, row.kind)
        if row.kind == "webhook":
            row.status, row.next_attempt_at = OutboxStatus.PENDING, now
        else:
            _finish(session, row, OutboxStatus.FAILED, {"error": INTERRUPTED}, INTERRUPTED, now)
            result.interrupted += 1
    session.commit()


def _send_in_turn(calls: list[tuple[int, Call]], slow_seconds: float):
    """One destination's calls, in order; after a transient failure or a slow answer the
    rest are deferred. Runs on a thread: it touches no session."""
    attempts, stop, slow = [], False, False
    for row_id, call in calls:
        if stop:
            attempts.append((row_id, DEFERRED))
            continue
        started = time.monotonic()
        try:
            attempt = call()
        except Exception as exc:  # one row's defect: that row fails, the others go on
            log.exception("outbox %s: the call raised", row_id)
            attempt = Attempt("failed", error=f"{UNEXPECTED}: {type(exc).__name__}: {exc}"[:300])
        attempts.append((row_id, attempt))
        slow = time.monotonic() - started >= slow_seconds
        stop = attempt.status == "retry" or slow
    return attempts, slow


def _record(
    session: Session,
    row: OutboxItem,
    attempt: Attempt,
    now: datetime,
    result: DeliveryResult,
    backed_off: dict[str, datetime],
) -> None:
    if attempt.status == "sent":
        _finish(session, row, OutboxStatus.SENT, attempt.detail, None, now)
        result.sent += 1
    elif attempt.status == "deferred":
        row.status, row.attempts = OutboxStatus.PENDING, row.attempts - 1
        row.next_attempt_at = backed_off.get(row.destination, now + RETRY_BASE)
        result.deferred += 1
    elif attempt.status == "retry" and row.attempts < MAX_ATTEMPTS:
        row.status, row.last_error = OutboxStatus.PENDING, attempt.error[:300]
        row.next_attempt_at = now + min(RETRY_BASE * 2 ** (row.attempts - 1), RETRY_MAX)
        backed_off[row.destination] = max(
            backed_off.get(row.destination, row.next_attempt_at), row.next_attempt_at
        )
        result.retrying += 1
    else:  # failed, or out of attempts
        _finish(session, row, OutboxStatus.FAILED, {"error": attempt.error}, attempt.error, now)
        result.failed += 1


def _finish(
    session: Session, row: OutboxItem, status: str, detail: dict, error: str | None, now
) -> None:
    row.status, row.last_error = status, error[:300] if error else None
    if status == OutboxStatus.SENT:
        row.sent_at = now
    step = session.get(Step, row.step_id) if row.step_id is not None else None
    if step is not None:
        step.outcome = "done" if status == OutboxStatus.SENT else "failed"
        message = step.detail.get("message", False) and status == OutboxStatus.SENT
        step.detail = {**step.detail, **detail, "message": message}


def _defer_backed_off(session: Session, workspace_id: int, backed_off: dict) -> int:
    """The backed-off destinations' other due rows wait too (not one timeout each)."""
    deferred = 0
    for destination, until in backed_off.items():
        deferred += session.execute(
            update(OutboxItem)
            .where(
                OutboxItem.workspace_id == workspace_id,
                OutboxItem.status == OutboxStatus.PENDING,
                OutboxItem.destination == destination,
                OutboxItem.next_attempt_at < until,
            )
            .values(next_attempt_at=until)
            .execution_options(synchronize_session=False)
        ).rowcount
    return deferred


def _prepare_row(session: Session, row: OutboxItem, platform: Platform, now) -> Call | Attempt:
    """`_prepare`, where an unexpected error (a channel secret that cannot be decrypted,
    say) fails this row alone instead of stopping the workspace's sender on it. A database
    error is not the row's: it propagates."""
    try:
        return _prepare(session, row, platform, now)
    except SQLAlchemyError:
        raise
    except Exception as exc:
        log.exception("outbox %s (%s): could not be prepared", row.id, row.kind)
        return Attempt("failed", error=f"{UNPREPARED}: {type(exc).__name__}: {exc}"[:300])


def _prepare(session: Session, row: OutboxItem, platform: Platform, now) -> Call | Attempt:
    """The row's call, ready to run off the session; or its outcome when nothing can be
    sent (a channel gone, no signing secret)."""
    if row.kind == "webhook":
        return _webhook_call(session, row, platform.outbound, now)
    if row.kind in ("cs_message", "template_message"):
        return _oa_call(session, row, platform)
    if row.kind == "send_material":
        return _material_call(session, row, platform)
    return Attempt("failed", error=f"unknown outbox kind {row.kind}")


def _upload_library_items(session: Session, workspace_id: int, platform: Platform, now) -> None:
    """The library items due rows send, uploaded to their OA when missing, before any row is
    claimed (an upload commits). A refusal is kept on the material; the row then fails with
    it when prepared."""
    due = session.scalars(
        select(OutboxItem.payload).where(
            OutboxItem.workspace_id == workspace_id,
            OutboxItem.status == OutboxStatus.PENDING,
            OutboxItem.kind == "send_material",
            OutboxItem.next_attempt_at <= now,
        )
    ).all()
    wanted = {(payload["channel_id"], payload["material_id"]) for payload in due}
    for channel_id, material_id in sorted(wanted):
        channel = scoped_get(session, Channel, channel_id, workspace_id)
        material = scoped_get(session, Material, material_id, workspace_id)
        if channel is None or material is None:
            continue
        try:
            materials.oa_message_for(session, material, channel, platform.oa_client(channel))
        except materials.MaterialError as exc:
            log.warning("library item %s for OA %s: %s", material_id, channel_id, exc.reason)


def _material_call(session: Session, row: OutboxItem, platform: Platform) -> Call | Attempt:
    """A library item as a customer-service message, from its finished uploads (made by
    _upload_library_items): not uploaded yet is a retry, refused by the platform a failure."""
    payload = row.payload
    channel = scoped_get(session, Channel, payload["channel_id"], row.workspace_id)
    material = scoped_get(session, Material, payload["material_id"], row.workspace_id)
    if channel is None or material is None:
        return Attempt("failed", error="no such OA or library item")
    try:
        message = materials.oa_message_for(session, material, channel)
    except materials.MaterialError as exc:
        return Attempt("retry" if exc.transient else "failed", error=exc.reason)
    client = platform.oa_client(channel)
    data = {"touser": payload["openid"], **message}

    def call() -> Attempt:
        try:
            client.post("message/custom/send", data=data)
        except WeChatApiError as exc:
            if may_have_gone_out(exc):
                return Attempt("failed", error=NO_ANSWER)
            error = f"{exc.errcode} {exc.errmsg}"
            return Attempt("retry" if is_transient(exc) else "failed", error=error)
        return Attempt("sent", {"openid": payload["openid"], "msgtype": message["msgtype"]})

    return call


def _oa_call(session: Session, row: OutboxItem, platform: Platform) -> Call | Attempt:
    payload = row.payload
    channel = scoped_get(session, Channel, payload["channel_id"], row.workspace_id)
    if channel is None:
        return Attempt("failed", error="not a follower")
    client = platform.oa_client(channel)
    path = "message/custom/send" if row.kind == "cs_message" else "message/template/send"
    data = {"touser": payload["openid"], **payload["message"]}

    def call() -> Attempt:
        try:
            answer = client.post(path, data=data)
        except WeChatApiError as exc:
            if may_have_gone_out(exc):  # the message may be out: never sent again
                return Attempt("failed", error=NO_ANSWER)
            error = f"{exc.errcode} {exc.errmsg}"
            return Attempt("retry" if is_transient(exc) else "failed", error=error)
        detail = {"openid": payload["openid"]}
        if row.kind == "template_message":
            detail["msgid"] = (answer or {}).get("msgid")
        return Attempt("sent", detail)

    return call


def _webhook_call(session: Session, row: OutboxItem, outbound: Outbound, now) -> Call | Attempt:
    signing = signing_secrets(session, row.workspace_id, now)
    if not signing:
        return Attempt("failed", error=WEBHOOK_NO_SECRET)
    url, fields = row.payload["url"], dict(row.payload["body"])
    if row.contact_id is not None:  # merged since the step: the person they are now
        contact = scoped_get(session, Contact, row.contact_id, row.workspace_id)
        fields["contact_id"] = live(session, contact).id if contact else row.contact_id
    delivery_id = fields["delivery_id"]
    body = json.dumps(fields, ensure_ascii=False).encode()
    headers = delivery_headers(signing, row.workspace_id, delivery_id, body)
    where = (row.workspace_id, fields.get("journey_id"), fields.get("enrolment_id"))

    def call() -> Attempt:
        try:
            answer = outbound.post(url, body, headers)
        except Refused as exc:
            log.warning("webhook refused: workspace %s journey %s enrolment %s: %s", *where, exc)
            return Attempt("failed", error=WEBHOOK_REFUSED)
        except Unreachable as exc:
            log.warning(
                "webhook unreachable: workspace %s journey %s enrolment %s: %s", *where, exc
            )
            return Attempt("retry", error=WEBHOOK_UNREACHABLE)
        if 200 <= answer.status < 300:  # a redirect is not: it is not followed
            return Attempt("sent", {"status": answer.status, "delivery": delivery_id})
        error = f"webhook answered {answer.status}"
        return Attempt("retry" if transient_answer(answer.status) else "failed", error=error)

    return call
