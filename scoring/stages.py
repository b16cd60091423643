"""Stages with their history: a person's move of an account or a contact (to any stage,
forward or back), the rules' moves of a scoring batch, and the history a page shows.

Every stage change is written here, so the history has one writer and no gaps.
"""

from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from models import Account, Contact, StageChange, User

REASON_LENGTH = StageChange.__table__.c.reason.type.length


def reached(stages_reached: str | None, stage: str) -> str:
    """`accounts.stages_reached` with `stage` in it: ",target,mqa," (in the order reached)."""
    shown = stages_reached or ","
    return shown if f",{stage}," in shown else f"{shown}{stage},"


def stages_of(stages_reached: str | None) -> set[str]:
    """The stages an `accounts.stages_reached` names."""
    return {key for key in (stages_reached or "").split(",") if key}


def set_stage(
    session: Session,
    subject: Account | Contact,
    stage: str,
    reason: str,
    user_id: int | None = None,
) -> bool:
    """A person's move, to any stage, forward or back; False if it is the stage already."""
    if subject.stage == stage:
        return False
    session.add(
        StageChange(
            workspace_id=subject.workspace_id,
            subject="account" if isinstance(subject, Account) else "contact",
            subject_id=subject.id,
            from_stage=subject.stage,
            to_stage=stage,
            reason=reason[:REASON_LENGTH],
            user_id=user_id,
        )
    )
    subject.stage = stage
    if isinstance(subject, Account):
        subject.stages_reached = reached(subject.stages_reached, stage)
    return True


def record_stage_moves(
    session: Session,
    workspace_id: int,
    model: type[Account] | type[Contact],
    moves: list[tuple],
    now: datetime,
    *,
    set_columns: bool = True,
) -> int:
    """Record a batch's stage moves, (subject, subject id, from, to, reason) each, and with
    `set_columns` set the column too, one UPDATE per stage reached (the scorer sets the
    accounts' in its own UPDATE). Returns how many moves were recorded."""
    if not moves:
        return 0
    if model is Account:
        _note_reached(session, workspace_id, moves)
    if set_columns:
        final = {subject_id: to for _, subject_id, _, to, _ in moves}  # last step wins
        by_stage: dict[str, list[int]] = defaultdict(list)
        for subject_id, to in final.items():
            by_stage[to].append(subject_id)
        for stage, ids in by_stage.items():
            session.execute(
                update(model)
                .where(model.workspace_id == workspace_id, model.id.in_(ids))
                .values(stage=stage)
                .execution_options(synchronize_session=False)
            )
    session.execute(
        StageChange.__table__.insert(),
        [
            {
                "workspace_id": workspace_id,
                "subject": subject,
                "subject_id": subject_id,
                "from_stage": before,
                "to_stage": to,
                "reason": reason,
                "changed_at": now,
            }
            for subject, subject_id, before, to, reason in moves
        ],
    )
    return len(moves)


def _note_reached(session: Session, workspace_id: int, moves: list[tuple]) -> None:
    """Each stage reached added to the accounts' `stages_reached`: one UPDATE per stage."""
    by_stage: dict[str, set[int]] = defaultdict(set)
    for _, subject_id, _, to, _ in moves:
        by_stage[to].add(subject_id)
    for stage, ids in by_stage.items():
        marker = f",{stage},"
        session.execute(
            update(Account)
            .where(
                Account.workspace_id == workspace_id,
                Account.id.in_(sorted(ids)),
                or_(
                    Account.stages_reached.is_(None),
                    ~Account.stages_reached.contains(marker, autoescape=True),
                ),
            )
            .values(stages_reached=func.coalesce(Account.stages_reached, ",") + f"{stage},")
            .execution_options(synchronize_session=False)
        )


def stage_history(
    session: Session, workspace_id: int, subject: str, subject_id: int, limit: int
) -> list:
    """The newest `limit` changes of an account's or a contact's stage: (change, the name of
    the user who moved it, or None for a rule), newest first."""
    return session.execute(
        select(StageChange, User.name)
        .outerjoin(User, User.id == StageChange.user_id)
        .where(
            StageChange.workspace_id == workspace_id,
            StageChange.subject == subject,
            StageChange.subject_id == subject_id,
        )
        .order_by(StageChange.changed_at.desc(), StageChange.id.desc())
        .limit(limit)
    ).all()
