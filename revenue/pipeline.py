"""The workspace's sales pipeline: ordered stages, each with a default probability, the
account stage it moves an account to, and for the closing ones the outcome (won/lost).
A workspace that never configured one gets the default on first use."""

from dataclasses import dataclass
from datetime import datetime

from marshmallow import ValidationError, fields, validate, validates_schema
from sqlalchemy import case, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.forms import NOT_WHOLE, FormSchema, count, field_messages, rows, text
from core.text import N_
from models import (
    Opportunity,
    OpportunityChange,
    OpportunitySource,
    OpportunityStatus,
    PipelineStage,
    utcnow,
)
from models.base import UTCDateTime


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


# ---- configuring the pipeline ---------------------------------------------------------------

MAX_STAGES = 20
KEY_PATTERN = r"^[a-z][a-z0-9_]*$"
OUTCOMES = (OpportunityStatus.WON.value, OpportunityStatus.LOST.value)


class StageRowSchema(FormSchema):
    key = fields.String(
        required=True,
        validate=[
            validate.Length(1, 30, error=N_("At most 30 characters.")),
            validate.Regexp(
                KEY_PATTERN, error=N_("Lower-case letters, digits and _, starting with a letter.")
            ),
        ],
        error_messages=field_messages(),
    )
    name = text(N_("1 to 60 characters."), high=60, required=True)
    probability = count(N_("From 0 to 100."), low=0, high=100)
    account_stage = fields.String(load_default=None)
    outcome = fields.String(
        load_default=None,
        validate=validate.OneOf(OUTCOMES, error=N_("Open, won or lost.")),
    )
    remove = fields.Boolean(load_default=False)
    # Where the stage goes (1 first); the rows' order when left out.
    order = fields.Integer(load_default=None, error_messages=field_messages(invalid=NOT_WHOLE))


class PipelineSchema(FormSchema):
    """The ordered stages as the pipeline form posts them; `account_stages` (the scoring
    model's stage keys) in the context."""

    stages = rows(StageRowSchema, required=True)

    def __init__(self, account_stages: frozenset[str], **kwargs):
        super().__init__(**kwargs)
        self.account_stages = account_stages

    @validates_schema
    def _whole_pipeline(self, data, **_kwargs):
        errors: dict = {}
        seen: set[str] = set()
        for index, row in enumerate(data["stages"]):
            if row["key"] in seen:
                errors.setdefault(index, {})["key"] = [N_("Another stage has this key.")]
            seen.add(row["key"])
            if row["account_stage"] and row["account_stage"] not in self.account_stages:
                errors.setdefault(index, {})["account_stage"] = [
                    N_("Not a stage of the scoring model.")
                ]
        if errors:
            raise ValidationError({"stages": errors})
        outcomes = [row["outcome"] for row in data["stages"] if not row["remove"]]
        problems = []
        if len(outcomes) > MAX_STAGES:
            problems.append(N_("At most 20 stages."))
        if outcomes.count(OpportunityStatus.WON) != 1:
            problems.append(N_("Exactly one stage must mean won."))
        if OpportunityStatus.LOST not in outcomes:
            problems.append(N_("At least one stage must mean lost."))
        if None not in outcomes:
            problems.append(N_("At least one stage must be open."))
        if problems:
            raise ValidationError({"stages": problems})


def stage_rows(stages: list[PipelineStage]) -> list[dict]:
    """The saved stages as the form shows them."""
    return [
        {
            "key": stage.key,
            "name": stage.name,
            "probability": stage.probability,
            "account_stage": stage.account_stage or "",
            "outcome": stage.outcome or "",
            "order": position + 1,
        }
        for position, stage in enumerate(stages)
    ]


def stages_in_use(session: Session, workspace_id: int) -> dict[str, int]:
    """Opportunities per stage key."""
    return dict(
        session.execute(
            select(Opportunity.stage, func.count())
            .where(Opportunity.workspace_id == workspace_id)
            .group_by(Opportunity.stage)
        ).all()
    )


def _removed_in_use(rows, in_use: set[str]) -> dict:
    """The rows (loaded, or as posted) that remove a stage opportunities are at."""
    return {
        index: {"remove": [N_("Opportunities are at this stage: keep it.")]}
        for index, row in enumerate(rows if isinstance(rows, list) else [])
        if isinstance(row, dict)
        and row.get("remove") not in (None, False, "", "0", "false")
        and row.get("key") in in_use
    }


def _with_removals(messages: dict, data: dict, in_use: set[str]) -> dict:
    """The schema's messages and, at once, the stages in use that the form removes."""
    removals = _removed_in_use(data.get("stages"), in_use)
    if not removals:
        return messages
    found = messages.get("stages")
    merged = dict(found) if isinstance(found, dict) else {"_schema": found} if found else {}
    for index, problem in removals.items():
        merged[index] = {**merged.get(index, {}), **problem}
    return {**messages, "stages": merged}


def save_pipeline(
    session: Session,
    workspace_id: int,
    data: dict,
    account_stages: frozenset[str],
    *,
    user_id: int | None = None,
    now: datetime | None = None,
) -> list[PipelineStage]:
    """Replace the workspace's stages by the posted ones, in their order; ValidationError
    (per row and field, or on the whole list) when they do not make a pipeline, or when a
    stage opportunities are at would go. A kept key keeps its row. A stage whose outcome
    changed takes its opportunities' status along (with their history), so the stage
    and the status never disagree and a CRM re-sending a deal changes nothing."""
    in_use = {key for key, number in stages_in_use(session, workspace_id).items() if number}
    try:
        loaded = PipelineSchema(account_stages).load(data)
    except ValidationError as exc:
        raise ValidationError(_with_removals(exc.messages, data, in_use)) from None
    posted = loaded["stages"]
    kept_keys = {row["key"] for row in posted if not row["remove"]}
    errors: dict = _removed_in_use(posted, in_use)
    existing = {stage.key: stage for stage in pipeline_of(session, workspace_id)}
    if (in_use & set(existing)) - {row["key"] for row in posted}:
        errors["_schema"] = [N_("Opportunities are at a stage this form leaves out: keep it.")]
    if errors:
        raise ValidationError({"stages": errors})
    for stage in existing.values():
        if stage.key not in kept_keys:
            session.delete(stage)
    session.flush()
    outcomes = {key: stage.outcome for key, stage in existing.items()}
    saved = []
    kept = [(row["order"] or index + 1, index, row) for index, row in enumerate(posted)]
    in_order = [row for _order, _index, row in sorted(kept) if not row["remove"]]
    for position, row in enumerate(in_order):
        stage = existing.get(row["key"]) or PipelineStage(workspace_id=workspace_id, key=row["key"])
        stage.name = row["name"]
        stage.position = position
        stage.probability = row["probability"]
        stage.account_stage = row["account_stage"] or None
        stage.outcome = row["outcome"] or None
        session.add(stage)
        saved.append(stage)
    session.flush()
    now = now or utcnow()
    for stage in saved:
        if stage.key in outcomes and (outcomes[stage.key] or None) != stage.outcome:
            _restatus(session, workspace_id, stage, user_id, now)
    return saved


def _restatus(
    session: Session, workspace_id: int, stage: PipelineStage, user_id: int | None, now: datetime
) -> None:
    """The opportunities at a stage whose outcome changed take the new status: closed now
    when they close, no closing date when they reopen; a history row each."""
    status = stage.outcome or OpportunityStatus.OPEN
    differing = (
        Opportunity.workspace_id == workspace_id,
        Opportunity.stage == stage.key,
        Opportunity.status != status,
    )
    session.execute(
        insert(OpportunityChange).from_select(
            [
                "workspace_id",
                "opportunity_id",
                "from_stage",
                "to_stage",
                "status",
                "amount",
                "source",
                "user_id",
                "changed_at",
            ],
            select(
                Opportunity.workspace_id,
                Opportunity.id,
                Opportunity.stage,
                Opportunity.stage,
                literal(str(status)),
                Opportunity.amount,
                literal(str(OpportunitySource.ADMIN)),
                literal(user_id, OpportunityChange.user_id.type),
                literal(now, UTCDateTime()),
            ).where(*differing),
        )
    )
    closed_at = (
        None
        if status == OpportunityStatus.OPEN
        else case(
            (Opportunity.status == OpportunityStatus.OPEN, literal(now, UTCDateTime())),
            else_=func.coalesce(Opportunity.closed_at, literal(now, UTCDateTime())),
        )
    )
    session.execute(
        update(Opportunity)
        .where(*differing)
        .values(status=status, closed_at=closed_at)
        .execution_options(synchronize_session="fetch")
    )
