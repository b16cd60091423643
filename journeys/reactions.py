"""Journeys reacting to interactions, called by the drain in the batch's transaction:
a goal ends an enrolment, the awaited event moves a wait on, another entry node's
trigger makes it jump there, and a trigger of a journey someone is not on enrols them
(as its re-entry policy allows). What becomes due now is walked by the runner.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.jobs import Followups, Job
from journeys.model import Journey, Node, event_filter
from journeys.steps import arrive, complete_step, finish, log_step, move, visited
from journeys.versions import Version, Versions
from models import OPEN_STATUSES, Enrolment, EnrolmentStatus, Interaction, utcnow


@dataclass(frozen=True)
class Touch:
    """An interaction of the batch, as the reactions read it."""

    id: int
    contact_id: int
    account_id: int | None
    kind: str
    properties: dict
    occurred_at: datetime


def touches_of_events(session: Session, event_ids: list[int]) -> list[Touch]:
    if not event_ids:
        return []
    rows = session.execute(
        select(
            Interaction.id,
            Interaction.contact_id,
            Interaction.account_id,
            Interaction.kind,
            Interaction.properties,
            Interaction.occurred_at,
        )
        .where(Interaction.source_event_id.in_(event_ids))
        .order_by(Interaction.occurred_at, Interaction.id)
    ).all()
    return [Touch(*row) for row in rows]


def on_interactions(
    session: Session,
    workspace_id: int,
    touches: list[Touch],
    followups: Followups | None = None,
    now: datetime | None = None,
) -> list[Enrolment]:
    """Goals, event waits, jumps and new enrolments for these interactions; returns the
    enrolments due now (the drain walks them at once; a `run_journeys` job is asked for,
    for whatever it could not)."""
    now = now or utcnow()
    versions = Versions(session)
    live = versions.live(workspace_id)
    if not live or not touches:
        return []
    journey_ids = [v.journey_id for v in live]
    contact_ids = {t.contact_id for t in touches}
    account_ids = {t.account_id for t in touches if t.account_id}
    open_rows = session.scalars(
        select(Enrolment)
        .where(
            Enrolment.workspace_id == workspace_id,
            Enrolment.journey_id.in_(journey_ids),
            Enrolment.status.in_(OPEN_STATUSES),
            or_(
                Enrolment.contact_id.in_(contact_ids),
                Enrolment.account_id.in_(account_ids or {-1}),
            ),
        )
        .order_by(Enrolment.id)
        # Locked: a runner walking one of them holds it until its batch commits, and the
        # drain then reads where the runner left it (never writes back a stale node).
        .with_for_update(key_share=True)
    ).all()
    open_by_subject = {(e.journey_id, _subject(e)): e for e in open_rows}
    last_entered = _last_entries(session, journey_ids, contact_ids, account_ids)
    due: dict[int, Enrolment] = {}  # by id: one enrolment may be moved by several touches
    for touch in touches:
        for version in live:
            subject = _touch_subject(version.model, touch)
            if subject is None:
                continue
            enrolment = open_by_subject.get((version.journey_id, subject))
            if enrolment is not None:
                if _react(session, versions, enrolment, touch, now):
                    due[enrolment.id] = enrolment
                if enrolment.status not in OPEN_STATUSES:
                    del open_by_subject[(version.journey_id, subject)]
                continue
            entries = version.model.entry_points(touch.kind, touch.properties)
            if not entries or not may_enter(
                version.model, last_entered.get((version.journey_id, subject)), now
            ):
                continue
            enrolment = _enrol(session, workspace_id, version, entries[0], touch, now)
            open_by_subject[(version.journey_id, subject)] = enrolment
            last_entered[(version.journey_id, subject)] = now
            due[enrolment.id] = enrolment
    if due and followups is not None:
        followups.add(Job.RUN_JOURNEYS, workspace_id)
    return list(due.values())


def _subject(enrolment: Enrolment) -> tuple[str, int]:
    if enrolment.account_id is not None and enrolment.contact_id is None:
        return ("account", enrolment.account_id)
    return ("contact", enrolment.contact_id)


def _touch_subject(model: Journey, touch: Touch) -> tuple[str, int] | None:
    if model.scope == "account":
        return ("account", touch.account_id) if touch.account_id else None
    return ("contact", touch.contact_id)


def _last_entries(session, journey_ids, contact_ids, account_ids) -> dict:
    rows = session.execute(
        select(
            Enrolment.journey_id,
            Enrolment.contact_id,
            Enrolment.account_id,
            func.max(Enrolment.entered_at),
        )
        .where(
            Enrolment.journey_id.in_(journey_ids),
            or_(
                Enrolment.contact_id.in_(contact_ids),
                Enrolment.account_id.in_(account_ids or {-1}),
            ),
        )
        .group_by(Enrolment.journey_id, Enrolment.contact_id, Enrolment.account_id)
    ).all()
    last = {}
    for journey_id, contact_id, account_id, entered in rows:
        key = ("contact", contact_id) if contact_id is not None else ("account", account_id)
        last[(journey_id, key)] = max(entered, last.get((journey_id, key), entered))
    return last


def may_enter(model: Journey, last_entered: datetime | None, now: datetime) -> bool:
    """Whether the journey's re-entry policy lets in someone who last entered then."""
    if last_entered is None or model.reentry == "always":
        return True
    if model.reentry == "period":
        return now - last_entered >= timedelta(days=model.reentry_days or 0)
    return False  # once


def _enrol(session, workspace_id, version: Version, node: Node, touch: Touch, now) -> Enrolment:
    account_scope = version.model.scope == "account"
    enrolment = Enrolment(
        workspace_id=workspace_id,
        journey_id=version.journey_id,
        version=version.version,
        contact_id=None if account_scope else touch.contact_id,
        account_id=touch.account_id,
        node_id=node.id,
        status=EnrolmentStatus.ACTIVE,
        next_run_at=now,
        visit=1,
        entered_at=now,
        entered_node=node.id,
        entered_because={
            "trigger": node.trigger,
            "interaction_id": touch.id,
            "kind": touch.kind,
            "contact_id": touch.contact_id,
        },
    )
    session.add(enrolment)
    session.flush()
    arrive(session, enrolment, "entered", {"kind": touch.kind, "interaction_id": touch.id})
    return enrolment


def _react(session, versions: Versions, enrolment: Enrolment, touch: Touch, now) -> int:
    """A goal ends it; the awaited event moves it on; another entry node's trigger makes it
    jump there. Returns 1 when it became due now."""
    model = versions.model(enrolment.journey_id, enrolment.version)
    detail = {"kind": touch.kind, "interaction_id": touch.id, "contact_id": touch.contact_id}
    if model.goal_met(touch.kind, touch.properties):
        enrolment.visit += 1  # a move of its own, beside the step it was on
        log_step(session, enrolment, enrolment.node_id, "goal", detail)
        finish(enrolment, EnrolmentStatus.GOAL, now)
        return 0
    node = model.node(enrolment.node_id)
    awaited = node.wait.get("event") if node.type == "wait" and node.wait else None
    waiting = enrolment.status == EnrolmentStatus.WAITING and awaited
    if waiting and event_filter(awaited).matches(touch.kind, touch.properties):
        complete_step(session, enrolment, "done", detail)
        move(enrolment, node.next, now)
        return 1
    for target in model.entry_points(touch.kind, touch.properties):
        if target.id != enrolment.node_id and not visited(session, enrolment, target.id):
            move(enrolment, target.id, now)
            arrive(session, enrolment, "jumped", detail)
            return 1
    return 0
