"""Opportunities: one item's schema (the CRM API, the import and the admin all load
through it), the references it names resolved in the workspace, and the write that
creates or updates one, keeps its history and moves its account's stage.

A CRM that re-sends the same item changes nothing: the row is found by its external id
and only a real change of stage, status or amount writes history.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.days import usable
from core.references import ACCOUNT, Reference, declare, unknown_references
from core.text import N_
from crm.accounts import account_for_domain, account_named
from crm.companies import normalize_company
from crm.contacts import normalized_identity
from crm.timeline import record_account_event
from models import (
    Account,
    AccountEventKind,
    Contact,
    Identity,
    IdentityKind,
    Opportunity,
    OpportunityChange,
    OpportunitySource,
    OpportunityStatus,
    OpportunityType,
    PipelineStage,
    User,
    utcnow,
)
from revenue.pipeline import stage_by_key
from scoring.engine import load_model
from scoring.model import advance
from scoring.stages import set_stage

MAX_AMOUNT = Decimal("999999999999.99")
UNKNOWN_ACCOUNT = N_("No account with this name or domain in the workspace.")
CLOSED_BEFORE_OPENED = N_("Must not be before the opening date.")
UNKNOWN_STAGE = N_("Not a stage of the pipeline.")
NO_ACCOUNT = N_("Name the account: account_id, account_name or account_domain.")
NAME_NEEDED = N_("A new opportunity needs a name.")
AMOUNT_NEEDED = N_("A new opportunity needs an amount.")
STAGE_NEEDED = N_("A new opportunity needs a stage.")
ACCOUNT_FIELDS = ("account_id", "account_name", "account_domain")
NOT_USABLE_DATE = N_("Not a usable date.")
UNKNOWN_OWNER = N_("No user of the workspace has this email; saved without an owner.")
CLOSED_IN_FUTURE = N_("Must not be more than a day from now.")
OPENED_IN_FUTURE = N_("Must not be more than a year from now.")


def _dated(message: str, ahead: timedelta):
    """A date at most `ahead` of now: a further one is a typo."""

    def check(value: datetime) -> None:
        if value > utcnow() + ahead:
            raise ValidationError(message)

    return check


# An item's account_id must name one of the workspace's accounts.
REFERENCES = declare("opportunity", Reference("account_id", ACCOUNT))


class UsableDateTime(fields.AwareDateTime):
    """An aware datetime in the years 2000..2100: one far outside is a typo, and moving it
    to UTC (or binding it) could overflow."""

    default_error_messages = {"unusable": NOT_USABLE_DATE}

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        if not usable(moment):
            raise self.make_error("unusable")
        return moment


class OpportunitySchema(Schema):
    """One opportunity as a CRM, an import row or the admin states it. On an update every
    field is optional: what is left out stays as it was."""

    class Meta:
        unknown = RAISE

    name = fields.String(validate=validate.Length(1, 200))
    amount = fields.Decimal(
        places=2,
        allow_nan=False,
        validate=validate.Range(0, MAX_AMOUNT),
        metadata={"description": "CNY, a decimal (a JSON string or number); never rounded."},
    )
    type = fields.String(validate=validate.OneOf([t.value for t in OpportunityType]))
    stage = fields.String(
        validate=validate.Length(1, 30),
        metadata={"description": "A key of the workspace's pipeline, e.g. `solution`."},
    )
    probability = fields.Integer(strict=True, validate=validate.Range(0, 100))
    lost_reason = fields.String(validate=validate.Length(1, 200))
    opened_at = UsableDateTime(
        validate=_dated(OPENED_IN_FUTURE, timedelta(days=365)),
        metadata={
            "description": "When the deal was created in the CRM; default: now. "
            "From 2000 to a year from now."
        },
    )
    closed_at = UsableDateTime(
        validate=_dated(CLOSED_IN_FUTURE, timedelta(days=1)),
        metadata={
            "description": "When it was won or lost; default: when it reached that stage. "
            "Not before opened_at, at most a day from now."
        },
    )
    account_id = fields.Integer(strict=True, validate=validate.Range(1))
    account_name = fields.String(validate=validate.Length(1, 200))
    account_domain = fields.String(validate=validate.Length(1, 100))
    create_account = fields.Boolean(
        metadata={"description": "Create the account by `account_name` when none matches."}
    )
    owner_email = fields.Email()
    contact_email = fields.Email()
    contact_phone = fields.String(validate=validate.Length(5, 30))

    @validates_schema
    def _closed_after_opened(self, data, **kwargs):
        opened, closed = data.get("opened_at"), data.get("closed_at")
        if opened and closed and closed < opened:
            raise ValidationError(CLOSED_BEFORE_OPENED, "closed_at")

    @post_load
    def _no_negative_zero(self, data, **kwargs):
        if "amount" in data and data["amount"] == 0:
            data["amount"] = Decimal("0.00")  # "-0" is zero, not ¥-0.00
        return data


@dataclass
class Resolved:
    """An item's references found in the workspace, or why not."""

    account: Account | None = None
    stage: PipelineStage | None = None
    owner_id: int | None = None
    contact_id: int | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)
    warnings: dict[str, list[str]] = field(default_factory=dict)


def resolve(
    session: Session,
    workspace_id: int,
    values: dict,
    existing: Opportunity | None = None,
    stages: dict[str, PipelineStage] | None = None,
) -> Resolved:
    """The account, stage, owner and contact an item names, each checked to belong to the
    workspace. Errors are per field; an unknown owner is only a warning."""
    stages = stages if stages is not None else stage_by_key(session, workspace_id)
    out = Resolved()
    if existing is None:
        for name, message in (("name", NAME_NEEDED), ("amount", AMOUNT_NEEDED)):
            if name not in values:
                out.errors[name] = [message]
        if "stage" not in values:
            out.errors["stage"] = [STAGE_NEEDED]
    if "stage" in values:
        out.stage = stages.get(values["stage"])
        if out.stage is None:
            out.errors["stage"] = [UNKNOWN_STAGE]
    elif existing is not None:
        out.stage = stages.get(existing.stage)
    out.account = _account(session, workspace_id, values, out.errors)
    named = any(name in values for name in ACCOUNT_FIELDS)
    if out.account is None and not named:
        if existing is not None:
            out.account = session.get(Account, existing.account_id)
        else:
            out.errors["account"] = [NO_ACCOUNT]
    if "owner_email" in values:
        out.owner_id = session.scalar(
            select(User.id).where(
                User.workspace_id == workspace_id,
                func.lower(User.email) == values["owner_email"].lower(),
            )
        )
        if out.owner_id is None:
            out.warnings["owner_email"] = [UNKNOWN_OWNER]
    out.contact_id = _contact(session, workspace_id, values)
    if _closed_before_opened(values, existing, out.stage):
        out.errors["closed_at"] = [CLOSED_BEFORE_OPENED]
    return out


def _closed_before_opened(
    values: dict, existing: Opportunity | None, stage: PipelineStage | None
) -> bool:
    """The schema compares the dates an item states; one it leaves out is the saved row's,
    or the default save_opportunity gives it (closed now; a new one opened now, or when
    it closed if that was earlier)."""
    if "opened_at" in values and "closed_at" in values:
        return False  # the schema's check
    if existing is None and "opened_at" not in values:
        return False  # opened by default no later than closed
    now = utcnow()
    opened = values.get("opened_at") or existing.opened_at
    closed = values.get("closed_at")
    if closed is None and stage is not None and stage.outcome:
        closed = (existing.closed_at if existing else None) or now
    return closed is not None and closed < opened


def _account(session: Session, workspace_id: int, values: dict, errors: dict) -> Account | None:
    if "account_id" in values:
        unknown = unknown_references(session, workspace_id, values, REFERENCES)
        if unknown:
            errors.update(unknown)
            return None
        return session.scalar(
            select(Account).where(
                Account.workspace_id == workspace_id, Account.id == values["account_id"]
            )
        )
    if "account_domain" in values:
        account = account_for_domain(session, workspace_id, values["account_domain"].lower())
        if account is not None:
            return account
    if "account_name" in values:
        key = normalize_company(values["account_name"])
        account = session.scalar(
            select(Account).where(
                Account.workspace_id == workspace_id, Account.normalized_name == key
            )
        )
        if account is None and values.get("create_account"):
            account = account_named(session, workspace_id, values["account_name"])
            if account is not None and values.get("account_domain"):
                account.domain = values["account_domain"].lower()
        if account is not None:
            return account
    if "account_name" in values or "account_domain" in values:
        errors["account" if "account_name" in values else "account_domain"] = [UNKNOWN_ACCOUNT]
    return None


def _contact(session: Session, workspace_id: int, values: dict) -> int | None:
    for kind, name in (
        (IdentityKind.EMAIL, "contact_email"),
        (IdentityKind.PHONE, "contact_phone"),
    ):
        if name not in values:
            continue
        contact_id = session.scalar(
            select(Identity.contact_id).where(
                Identity.workspace_id == workspace_id,
                Identity.kind == kind,
                Identity.channel_id.is_(None),
                Identity.value == normalized_identity(kind, values[name]),
            )
        )
        if contact_id is not None:
            merged = session.scalar(select(Contact.merged_into_id).where(Contact.id == contact_id))
            return merged or contact_id
    return None


@dataclass(frozen=True)
class Saved:
    opportunity: Opportunity
    status: str  # created / updated / unchanged


def save_opportunity(
    session: Session,
    workspace_id: int,
    values: dict,
    resolved: Resolved,
    *,
    source: OpportunitySource,
    external_id: str | None = None,
    existing: Opportunity | None = None,
    user_id: int | None = None,
    now: datetime | None = None,
    account_stages: tuple | None = None,
) -> Saved:
    """Create or update one opportunity from an item `resolve` found no errors in: its
    history when the stage, status or amount changed, the account's timeline, and the
    account's stage moved forward to the one its pipeline stage maps to."""
    now = now or utcnow()
    stage = resolved.stage
    opportunity = existing
    created = opportunity is None
    if created:
        opportunity = Opportunity(
            workspace_id=workspace_id,
            external_id=external_id,
            source=source,
            opened_at=values.get("opened_at") or _default_opened(values, stage, now),
            type=OpportunityType.NEW,
            probability=stage.probability,
            stage=stage.key,
        )
        session.add(opportunity)
    before = (opportunity.stage, opportunity.status, opportunity.amount)
    before_account = opportunity.account_id
    for name in ("name", "amount", "type", "lost_reason", "opened_at"):
        if name in values:
            setattr(opportunity, name, values[name])
    opportunity.account_id = resolved.account.id
    if "owner_email" in values:
        opportunity.owner_id = resolved.owner_id
    if resolved.contact_id is not None:
        opportunity.contact_id = resolved.contact_id
    if stage.key != opportunity.stage:
        opportunity.stage = stage.key
        if "probability" not in values:
            opportunity.probability = stage.probability
    if "probability" in values:
        opportunity.probability = values["probability"]
    opportunity.status = stage.outcome or OpportunityStatus.OPEN
    if opportunity.status == OpportunityStatus.OPEN:
        opportunity.closed_at = None
    else:
        opportunity.closed_at = values.get("closed_at") or opportunity.closed_at or now
    after = (opportunity.stage, opportunity.status, opportunity.amount)
    changed = created or after != before or opportunity.account_id != before_account
    if not changed and not _fields_changed(session, opportunity):
        return Saved(opportunity, "unchanged")
    session.flush()
    if created or after != before:
        session.add(
            OpportunityChange(
                workspace_id=workspace_id,
                opportunity_id=opportunity.id,
                from_stage=None if created else before[0],
                to_stage=opportunity.stage,
                status=opportunity.status,
                amount=opportunity.amount,
                source=source,
                user_id=user_id,
                changed_at=now,
            )
        )
        record_account_event(
            session,
            workspace_id=workspace_id,
            account_id=opportunity.account_id,
            kind=AccountEventKind.OPPORTUNITY,
            contact_id=opportunity.contact_id,
            user_id=user_id,
            text=_event_text(opportunity, stage, created),
            data={"opportunity_id": opportunity.id, "stage": stage.key, "source": str(source)},
            now=now,
        )
        move_account_stage(session, resolved.account, opportunity, stage, user_id, account_stages)
    return Saved(opportunity, "created" if created else "updated")


def _default_opened(values: dict, stage: PipelineStage, now: datetime) -> datetime:
    """Now, or for a deal that comes closed at an earlier date, that date: never opened
    after it closed."""
    closed = values.get("closed_at")
    return min(closed, now) if stage.outcome and closed is not None else now


def _fields_changed(session: Session, opportunity: Opportunity) -> bool:
    """Whether anything but stage, status and amount was changed (name, owner, dates)."""
    return opportunity in session.dirty and session.is_modified(opportunity)


def _event_text(opportunity: Opportunity, stage: PipelineStage, created: bool) -> str:
    amount = f"¥{opportunity.amount:,.2f}"
    if created:
        return f"新商机「{opportunity.name}」{amount}，阶段：{stage.name}"
    if opportunity.status == OpportunityStatus.WON:
        return f"商机「{opportunity.name}」赢单 {amount}"
    if opportunity.status == OpportunityStatus.LOST:
        reason = f"（{opportunity.lost_reason}）" if opportunity.lost_reason else ""
        return f"商机「{opportunity.name}」输单{reason}"
    return f"商机「{opportunity.name}」进入 {stage.name}，{amount}"


def account_stage_for(opportunity: Opportunity, stage: PipelineStage) -> str | None:
    """The account stage an opportunity at this pipeline stage means: a won expansion is
    expansion; anything else, a won renewal too (the customer stays a customer), the
    stage's own mapping."""
    if stage.outcome == OpportunityStatus.WON and opportunity.type == OpportunityType.EXPANSION:
        return "expansion"
    return stage.account_stage


def move_account_stage(
    session: Session,
    account: Account,
    opportunity: Opportunity,
    stage: PipelineStage,
    user_id: int | None,
    account_stages: tuple | None = None,
) -> bool:
    """Forward only, as the scoring rules move stages; a stage the model lacks is skipped.
    `account_stages`: the model's stages, when a caller saving many has loaded them."""
    target = account_stage_for(opportunity, stage)
    if target is None:
        return False
    stages = account_stages or load_model(session, account.workspace_id).stages
    if not advance(stages, account.stage, target):
        return False
    return set_stage(
        session, account, target, f"商机「{opportunity.name}」：{stage.name}"[:300], user_id
    )
