"""The step log and the moves of an enrolment.

Every node an enrolment reaches is logged in `journey_steps`, unique per enrolment,
version, node and move (`visit`), so a retried run finds the step it already took
instead of taking it again. A move advances `visit`; an arrival by a trigger (entered,
jumped) is a move of its own.
"""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Enrolment, EnrolmentStatus, Step, utcnow


def new_step(enrolment: Enrolment, node_id: str, outcome: str, detail: dict) -> Step:
    return Step(
        enrolment_id=enrolment.id,
        journey_id=enrolment.journey_id,
        version=enrolment.version,
        node_id=node_id,
        visit=enrolment.visit,
        outcome=outcome,
        detail=detail,
        at=utcnow(),
    )


def log_step(
    session: Session, enrolment: Enrolment, node_id: str, outcome: str, detail: dict
) -> Step:
    """The step of this move; one already logged (a retried run) is returned as it is."""
    existing = session.scalar(
        select(Step).where(
            Step.enrolment_id == enrolment.id,
            Step.version == enrolment.version,
            Step.node_id == node_id,
            Step.visit == enrolment.visit,
        )
    )
    if existing is not None:
        return existing
    step = new_step(enrolment, node_id, outcome, detail)
    session.add(step)
    session.flush()
    return step


def arrive(session: Session, enrolment: Enrolment, outcome: str, detail: dict) -> None:
    """Entered or jumped here by a trigger: logged as its own move, so running the node
    (the next move) is not mistaken for a step already taken."""
    log_step(session, enrolment, enrolment.node_id, outcome, detail)
    enrolment.visit += 1


def _current_step(session: Session, enrolment: Enrolment) -> Step | None:
    """The step of the enrolment's current move, if it has one."""
    return session.scalar(
        select(Step).where(
            Step.enrolment_id == enrolment.id,
            Step.version == enrolment.version,
            Step.node_id == enrolment.node_id,
            Step.visit == enrolment.visit,
        )
    )


def complete_step(session: Session, enrolment: Enrolment, outcome: str, detail: dict) -> None:
    step = _current_step(session, enrolment)
    if step is None:
        log_step(session, enrolment, enrolment.node_id, outcome, detail)
    else:
        step.outcome, step.detail = outcome, {**step.detail, **detail}


def visited(session: Session, enrolment: Enrolment, node_id: str) -> bool:
    return (
        session.scalar(
            select(Step.id)
            .where(
                Step.enrolment_id == enrolment.id,
                Step.node_id == node_id,
                Step.outcome.in_(("done", "skipped", "sending", "waiting")),
            )
            .limit(1)
        )
        is not None
    )


def move(enrolment: Enrolment, target: str | None, now: datetime) -> None:
    if target is None:
        finish(enrolment, EnrolmentStatus.COMPLETED, now)
        return
    enrolment.node_id = target
    enrolment.visit += 1
    enrolment.status = EnrolmentStatus.ACTIVE
    enrolment.next_run_at = now


def finish(enrolment: Enrolment, status: str, now: datetime) -> None:
    enrolment.status = status
    enrolment.next_run_at = None
    enrolment.finished_at = now
