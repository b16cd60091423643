"""The workspace's sales pipeline: ordered stages, each with a default probability, the
account stage it moves an account to, and for the closing ones the outcome (won/lost).
A workspace that never configured one gets the default on first use."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import OpportunityStatus, PipelineStage


@dataclass(frozen=True)
class StageSpec:
    key: str
    name: str
    probability: int
    account_stage: str | None
    outcome: str | None = None


DEFAULT_PIPELINE = (
    StageSpec("qualify", "需求确认", 10, "meeting"),
    StageSpec("solution", "方案报价", 30, "opportunity"),
    StageSpec("negotiation", "商务谈判", 60, "opportunity"),
    StageSpec("won", "赢单", 100, "customer", OpportunityStatus.WON),
    StageSpec("lost", "输单", 0, None, OpportunityStatus.LOST),
)


def pipeline_of(session: Session, workspace_id: int) -> list[PipelineStage]:
    """The workspace's stages in order, the default ones written on first use."""
    stages = _stages(session, workspace_id)
    if stages:
        return stages
    try:
        with session.begin_nested():
            session.add_all(
                PipelineStage(
                    workspace_id=workspace_id,
                    key=spec.key,
                    name=spec.name,
                    position=position,
                    probability=spec.probability,
                    account_stage=spec.account_stage,
                    outcome=spec.outcome,
                )
                for position, spec in enumerate(DEFAULT_PIPELINE)
            )
    except IntegrityError:  # written meanwhile by another request
        pass
    return _stages(session, workspace_id)


def stage_by_key(session: Session, workspace_id: int) -> dict[str, PipelineStage]:
    return {stage.key: stage for stage in pipeline_of(session, workspace_id)}


def _stages(session: Session, workspace_id: int) -> list[PipelineStage]:
    return list(
        session.scalars(
            select(PipelineStage)
            .where(PipelineStage.workspace_id == workspace_id)
            .order_by(PipelineStage.position, PipelineStage.id)
        )
    )
