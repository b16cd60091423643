"""Draining the durable inbox: claim a batch of one lane, handle each event, record the
outcome.

One bad event never blocks the batch: it runs in its own savepoint, and a
failure is written on the row with a backoff, then retried by a later drain.
Drains of a workspace's lanes run side by side; a deadlock or serialization
failure between them rolls the batch back and runs it again.
"""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from config import MAX_LANES
from core.jobs import AT_FRONT, Job
from core.transient import is_rerunnable
from crm import touchpoints
from crm.accounts import AccountMoves
from crm.contacts import TitleTags
from crm.crm_webhook import tell_crm_of_mqa
from crm.identity import IdentityCache
from crm.rules import evaluate_behavior
from handlers.interactions import record_buffered_interactions
from handlers.registry import HANDLERS, Batch, EventContext
from journeys.reactions import on_interactions, touches_of_events
from journeys.runner import ENRICHMENT_WAIT, walk_now
from models import InboundEvent, InboxStatus, utcnow
from models.contact import IdentityKind
from sales.notify import notify_owners
from sales.routing import route_accounts
from sales.task_rules import tasks_for_scoring
from scoring.engine import Scorer
from wechat.callbacks import OA, WECOM
from wechat.events import NormalizedEvent, Unnormalizable, normalize

log = logging.getLogger(__name__)
_DUE = (InboxStatus.PENDING, InboxStatus.FAILED)
# Advisory lock keys of drains: this offset plus the workspace id times MAX_LANES plus the lane.
DRAIN_LOCK_SPACE = 7_340_000_000
# PostgreSQL's deadlock_detected, serialization_failure, lock_not_available: worth a rerun.
BATCH_RUNS = 4
HANDOVER = AT_FRONT  # follow-ups a drain steps aside for
KIND_LENGTH = InboundEvent.__table__.c.kind.type.length


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: int = 30
    max_seconds: int = 3600

    def delay(self, attempts: int) -> timedelta:
        return timedelta(seconds=min(self.base_seconds * 2 ** (attempts - 1), self.max_seconds))


@dataclass
class DrainResult:
    done: int = 0
    ignored: int = 0
    failed: int = 0
    dead: int = 0
    batches: int = 0
    more: bool = False

    @property
    def handled(self) -> int:
        return self.done + self.ignored + self.failed + self.dead


def drain(
    session: Session,
    workspace_id: int,
    *,
    lane: int | None = None,
    batch_size: int = 200,
    policy: RetryPolicy | None = None,
    max_seconds: float = 60.0,
    after_commit: Callable[[set[tuple[Job, int]]], None] | None = None,
    optimistic: bool = True,
    enrichment_wait: timedelta = ENRICHMENT_WAIT,
) -> DrainResult:
    """Process due events of one lane of a workspace (None: every lane) until none is left
    or time is up.

    `result.more` says events may remain: the caller asks for another drain
    rather than run past its job's timeout. `after_commit` gets each batch's
    follow-up jobs as soon as the batch is committed (a welcome cannot wait for
    the rest of a long drain). Without `optimistic`, every event runs in its own
    savepoint from the start (bench/drain_throughput.py compares the two).
    """
    policy = policy or RetryPolicy()
    result = DrainResult()
    deadline = time.monotonic() + max_seconds
    while True:
        claimed, followups = _run_batch(
            session, workspace_id, lane, batch_size, policy, result, optimistic, enrichment_wait
        )
        result.batches += 1
        if after_commit and followups:
            after_commit(followups)
        if claimed < batch_size:
            return result
        # A welcome this batch asked for waits at the front of the queue (its 20 seconds
        # run): the drain hands the worker over and asks to go on after it.
        if time.monotonic() >= deadline or any(job in HANDOVER for job, _ in followups):
            result.more = True
            return result


def _run_batch(
    session, workspace_id, lane, batch_size, policy, result, optimistic, enrichment_wait
):
    """One batch, committed; rolled back and run again when it lost a deadlock or a
    serialization race to a drain of another lane (its scoring and journeys included)."""
    for run in range(1, BATCH_RUNS + 1):
        counts = (result.done, result.ignored, result.failed, result.dead)
        try:
            outcome = _process_batch(
                session,
                workspace_id,
                lane,
                batch_size,
                policy,
                result,
                optimistic,
                enrichment_wait,
            )
            session.commit()
            return outcome
        except DBAPIError as exc:
            session.rollback()
            if not is_rerunnable(exc) or run == BATCH_RUNS:
                raise
            result.done, result.ignored, result.failed, result.dead = counts
            log.info(
                "batch of workspace %s lane %s run again (%s): %s",
                workspace_id,
                lane,
                run,
                getattr(exc.orig, "sqlstate", None),
            )
    raise AssertionError("unreachable")


def _claim(session: Session, workspace_id: int, lane: int | None, batch_size: int, now):
    """The next due events of the lane: WeCom's first (an add's welcome has 20 seconds),
    then the OA's, each platform in arrival order (one person's events stay in order)."""
    lanes = () if lane is None else (InboundEvent.lane == lane,)
    wecom = (*lanes, InboundEvent.platform == WECOM)
    rows = _claim_where(session, workspace_id, batch_size, now, wecom)
    # Beside WeCom events, a smaller share of the rest: the batch commits (and asks for
    # its welcomes) sooner, and the OA backlog still moves on every batch.
    room = batch_size - len(rows) if not rows else min(batch_size - len(rows), batch_size // 4)
    if room > 0:
        others = (*lanes, InboundEvent.platform != WECOM)
        rows += _claim_where(session, workspace_id, room, now, others)
    return rows


def _claim_where(session: Session, workspace_id: int, limit: int, now: datetime, where):
    stmt = (
        select(InboundEvent)
        .where(
            InboundEvent.workspace_id == workspace_id,
            *where,
            InboundEvent.status.in_(_DUE),
            InboundEvent.next_attempt_at <= now,
        )
        .order_by(InboundEvent.id)
        .limit(limit)
        # Rows an operator's retry or a stray second drain holds are left to them.
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(stmt))


def _process_batch(
    session: Session,
    workspace_id: int,
    lane: int | None,
    batch_size: int,
    policy: RetryPolicy,
    result: DrainResult,
    optimistic: bool = True,
    enrichment_wait: timedelta = ENRICHMENT_WAIT,
) -> tuple[int, set[tuple[Job, int]]]:
    now = utcnow()
    rows = _claim(session, workspace_id, lane, batch_size, now)
    if not rows:
        return 0, set()
    parsed: list[tuple[InboundEvent, NormalizedEvent | Exception]] = []
    for row in rows:
        try:
            parsed.append((row, _parse(row)))
        except Exception as exc:  # a payload wechatpy cannot parse fails alone
            parsed.append((row, exc))
    keys, touches = _identity_keys(parsed)
    done = optimistic and _optimistic_pass(
        session, workspace_id, keys, touches, parsed, now, policy, result
    )
    if done:
        batch, outcomes = done
    else:  # a savepoint per event: a failing event fails alone
        batch = _new_batch(session, workspace_id, keys, touches, fast=False)
        outcomes = _handle_all(session, batch, parsed, now, policy, result, isolate=True)
    _after_batch(session, batch)
    handled = [o["id"] for o in outcomes if o["status"] == InboxStatus.DONE]
    _score(session, batch, handled)
    _journeys(session, batch, handled, enrichment_wait)
    if outcomes:
        session.execute(update(InboundEvent), outcomes)
    result.done += sum(o["status"] == InboxStatus.DONE for o in outcomes)
    result.ignored += sum(o["status"] == InboxStatus.IGNORED for o in outcomes)
    # A batch cut short for WeCom's sake counts as full: more may be waiting.
    full = any(row.platform == WECOM for row in rows) or len(rows) == batch_size
    return (batch_size if full else len(rows)), batch.followups.jobs


def _parse(row: InboundEvent) -> NormalizedEvent:
    if row.platform in touchpoints.PLATFORMS:
        return touchpoints.parse(row.platform, row.payload)
    return normalize(row.platform, row.payload)


def _optimistic_pass(session, workspace_id, keys, touches, parsed, now, policy, result):
    """The whole batch in one savepoint, its writes flushed together: (batch, outcomes),
    or None when anything failed (rolled back; the caller goes event by event)."""
    try:
        with session.begin_nested(), session.no_autoflush:
            batch = _new_batch(session, workspace_id, keys, touches, fast=True)
            outcomes = _handle_all(session, batch, parsed, now, policy, result, isolate=False)
            batch.finish(session)
            session.flush()  # the batch's changes in grouped statements
            record_buffered_interactions(session, batch)
    except Exception as exc:
        if is_rerunnable(exc):
            raise  # the transaction holds locks the other drain waits for: run the batch again
        log.info("batch of workspace %s retried event by event: %s", workspace_id, exc)
        session.expire_all()
        return None
    for row, event in parsed:  # unparsable payloads are marked once the batch holds
        if isinstance(event, Exception):
            _fail(row, event, now, policy, result)
    return batch, outcomes


def _new_batch(
    session: Session, workspace_id: int, keys: dict, touches: list, *, fast: bool
) -> Batch:
    identities = IdentityCache(workspace_id)
    identities.preload(session, set(keys) | {key for named, _ in touches for key in named})
    if fast:
        # A touchpoint naming nobody known makes its person from its strongest identity.
        for named, occurred_at in touches:
            if not any(identities.known(*key) for key in named):
                first = touchpoints.creatable(named)
                if first is not None:
                    keys[first] = min(keys.get(first, occurred_at), occurred_at)
        identities.create_missing(session, keys)
    return Batch(
        workspace_id,
        identities,
        buffer_interactions=fast,
        title_tags=TitleTags() if fast else None,
        account_moves=AccountMoves() if fast else None,
    )


def _handle_all(session, batch, parsed, now, policy, result, *, isolate: bool) -> list[dict]:
    """Run each event's handler; with `isolate`, each in its own savepoint so a failing
    event is marked failed alone (without, the first failure raises)."""
    outcomes = []  # one bulk UPDATE for the rows that succeeded or were ignored
    for row, event in parsed:
        if isinstance(event, Exception):
            if isolate:
                _fail(row, event, now, policy, result)
            continue
        kind = (event.kind or event.source_type)[:KIND_LENGTH]
        handler = HANDLERS.get(event.kind) if event.kind else None
        if handler is None:
            outcomes.append(_outcome(row, InboxStatus.IGNORED, kind, now))
            continue
        ctx = EventContext(
            batch.workspace_id, row.channel_id, row.id, event, batch, row.received_at
        )
        if not isolate:
            handler(session, ctx)
            outcomes.append(_outcome(row, InboxStatus.DONE, kind, now))
            continue
        try:
            with session.begin_nested():
                handler(session, ctx)
        except Exception as exc:
            if is_rerunnable(exc):
                raise
            batch.forget_failed(session)
            row.kind = kind
            _fail(row, exc, now, policy, result)
            continue
        outcomes.append(_outcome(row, InboxStatus.DONE, kind, now))
    return outcomes


def _after_batch(session: Session, batch: Batch) -> None:
    """Rules over the batch as a whole: one query per behavior rule, not one per event."""
    try:
        with session.begin_nested():
            evaluate_behavior(
                session,
                batch.tags(session),
                batch.rules(session),
                batch.touched,
                batch.followups,
            )
    except Exception as exc:  # the events stay handled; the contacts are re-evaluated when they act
        if is_rerunnable(exc):
            raise
        log.exception("behavior rules failed for workspace %s", batch.workspace_id)


def _score(session: Session, batch: Batch, event_ids: list[int]) -> None:
    """Lead and account scores, MQA, tiers, surges and stages for what the batch recorded,
    in the batch's transaction; the owners' alerts go out after the commit."""
    try:
        with session.begin_nested():
            result = Scorer.load(session, batch.workspace_id).score_events(event_ids)
            tell_crm_of_mqa(session, batch.workspace_id, result.alerts, batch.followups)
            route_accounts(session, batch, result.alerts)
            notify_owners(session, result.alerts, batch.followups)
            tasks_for_scoring(session, batch.workspace_id, result)
    except Exception as exc:  # the events stay handled; `flask scoring rescore` catches up
        if is_rerunnable(exc):
            raise  # the batch runs again: a lost race must not drop its scores
        log.exception("scoring failed for workspace %s", batch.workspace_id)


def _journeys(
    session: Session, batch: Batch, event_ids: list[int], enrichment_wait: timedelta
) -> None:
    """Goals, awaited events, jumps and new enrolments for what the batch recorded, then
    the steps they made due, walked in the batch's transaction (decided here; messages and
    webhooks go to the outbox, and the sender acts after the commit)."""
    try:
        with session.begin_nested():
            touches = touches_of_events(session, event_ids)
            due = on_interactions(session, batch.workspace_id, touches, batch.followups)
    except Exception as exc:  # the events stay handled; journeys miss this batch's triggers
        if is_rerunnable(exc):
            raise
        log.exception("journeys failed for workspace %s", batch.workspace_id)
        return
    if not due:
        return
    try:
        with session.begin_nested():
            walked = walk_now(session, batch.workspace_id, due, enrichment_wait=enrichment_wait)
        batch.followups.jobs |= walked.followups.jobs
    except Exception as exc:  # still due: the run_journeys job asked for walks them
        if is_rerunnable(exc):
            raise
        log.exception("journey steps failed in the drain of workspace %s", batch.workspace_id)


def _outcome(row: InboundEvent, status: InboxStatus, kind: str, now: datetime) -> dict:
    return {"id": row.id, "status": status, "kind": kind, "processed_at": now, "last_error": None}


def _identity_keys(parsed) -> tuple[dict[tuple[str, int | None, str], datetime], list]:
    """The identities the batch's callbacks name, each with the time of its earliest event
    (made into contacts up front), and each touchpoint's identities with its time (looked
    up first: one touchpoint may name several identities of one person)."""
    keys: dict[tuple[str, int | None, str], datetime] = {}
    touches: list[tuple[list[tuple[str, int | None, str]], datetime]] = []
    for row, event in parsed:
        if not isinstance(event, NormalizedEvent) or event.kind not in HANDLERS:
            continue
        if event.platform in touchpoints.PLATFORMS:
            touches.append((touchpoints.identity_keys(event), event.occurred_at))
        elif event.subject:
            kind = IdentityKind.OPENID if event.platform == OA else IdentityKind.EXTERNAL_USERID
            key = (kind, row.channel_id, event.subject)
            keys[key] = min(keys.get(key, event.occurred_at), event.occurred_at)
    return keys, touches


def _fail(
    row: InboundEvent, exc: Exception, now: datetime, policy: RetryPolicy, result: DrainResult
) -> None:
    row.attempts += 1
    row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    # A payload that cannot be normalized reads the same on every retry.
    if row.attempts >= policy.max_attempts or isinstance(exc, Unnormalizable):
        row.status = InboxStatus.DEAD
        result.dead += 1
    else:
        row.status = InboxStatus.FAILED
        row.next_attempt_at = now + policy.delay(row.attempts)
        result.failed += 1
    log.warning(
        "inbound event %s failed (attempt %s, %s): %s",
        row.id,
        row.attempts,
        row.status,
        row.last_error,
        exc_info=exc,
    )


@contextmanager
def exclusive_drain(engine: Engine, workspace_id: int, lane: int) -> Iterator[bool]:
    """Whether this worker may drain the lane now: one drain per (workspace, lane) at a
    time on PostgreSQL (one person's events in order). The lock lives on its own
    connection, across the drain's many transactions, and dies with a killed worker's."""
    if engine.dialect.name != "postgresql":
        yield True  # SQLite: one writer anyway
        return
    key = drain_lock_key(workspace_id, lane)
    with engine.connect() as conn:
        held = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        conn.commit()
        try:
            yield held
        finally:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()


def drain_lock_key(workspace_id: int, lane: int) -> int:
    return DRAIN_LOCK_SPACE + workspace_id * MAX_LANES + lane


class DrainSignals(Protocol):
    """The "please drain" flags a drain reads and clears (app.queue.JobQueue keeps them)."""

    def drain_started(self, workspace_id: int, lane: int) -> None: ...

    def drain_requested(self, workspace_id: int, lane: int) -> bool: ...

    def enqueue_drain(self, workspace_id: int, lane: int) -> None: ...


def drain_workspace(
    db,
    signals: DrainSignals,
    workspace_id: int,
    lane: int,
    *,
    policy: RetryPolicy,
    batch_size: int,
    max_seconds: float,
    after_commit: Callable[[set[tuple[Job, int]]], None],
    enrichment_wait: timedelta = ENRICHMENT_WAIT,
) -> dict:
    """Process the due inbound events of one lane of a workspace: the drain job.

    One drain per lane at a time: a drain that finds another running leaves the request
    flag set, and the running one, seeing it, drains again before it stops. Past
    `max_seconds` it stops and queues its next run at the back of the high queue, so a
    welcome queued meanwhile goes first.
    """
    total = {"done": 0, "ignored": 0, "failed": 0}
    more = False
    deadline = time.monotonic() + max_seconds
    with exclusive_drain(db.engine, workspace_id, lane) as mine:
        if not mine:
            return {**total, "skipped": True}
        while True:
            # Clear the request flag before reading: a callback after this point asks again.
            signals.drain_started(workspace_id, lane)
            with db.session() as session:
                result = drain(
                    session,
                    workspace_id,
                    lane=lane,
                    batch_size=batch_size,
                    policy=policy,
                    max_seconds=max(deadline - time.monotonic(), 0.0),
                    enrichment_wait=enrichment_wait,
                    after_commit=after_commit,
                )
            _log_drain(workspace_id, lane, result)
            for key in total:
                total[key] += getattr(result, key)
            more = result.more
            if more or time.monotonic() >= deadline:
                break
            if not signals.drain_requested(workspace_id, lane):
                break
    # Asked for between the last check and the lock's release, or out of time: go on.
    if more or signals.drain_requested(workspace_id, lane):
        signals.enqueue_drain(workspace_id, lane)
    return total


def _log_drain(workspace_id: int, lane: int, result: DrainResult) -> None:
    if result.handled:
        log.info(
            "drained workspace %s lane %s: %s done, %s ignored, %s failed, %s dead in %s batches",
            workspace_id,
            lane,
            result.done,
            result.ignored,
            result.failed,
            result.dead,
            result.batches,
        )
