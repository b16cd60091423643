"""The opportunity pages' forms: one opportunity as typed (checked through the revenue
schema, its account, stage and owner looked up in the workspace), the list's filters from
the query string, and the pipeline's rows."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import g, request
from flask_babel import gettext as _
from marshmallow import ValidationError
from sqlalchemy.orm import Session

from core.days import usable
from core.forms import REQUIRED, flat_errors, shown
from core.references import fits_column
from core.text import N_
from crm.imports import parse_number
from crm.users import workspace_user
from models import Account, Opportunity, OpportunityStatus, OpportunityType, PipelineStage, User
from revenue.directory import OpportunityFilters
from revenue.imports import NOT_AMOUNT, NOT_PROBABILITY, schema_messages
from revenue.opportunities import OpportunitySchema

FIELDS = (
    "name",
    "account_id",
    "amount",
    "type",
    "stage",
    "probability",
    "opened_at",
    "closed_at",
    "lost_reason",
    "owner_id",
)
NOT_A_DATE = N_("A date such as 2026-03-01.")
OUT_OF_RANGE = N_("A date between 2000 and 2100.")
LOST_REASON_NEEDED = N_("Say why it was lost.")
NO_SUCH_USER = N_("Not a user of this workspace.")
PICK_ACCOUNT = N_("Pick an account.")
NOT_YOURS = N_("Not one of your accounts.")


def zone() -> ZoneInfo:
    return ZoneInfo(g.get("workspace_timezone") or "Asia/Shanghai")


def posted() -> dict[str, str]:
    return {name: request.form.get(name, "").strip() for name in FIELDS}


def form_values(opportunity: Opportunity | None, account_id: int | None = None) -> dict:
    """What the form shows: the opportunity's values, or a new one's defaults."""
    if opportunity is None:
        return {
            "account_id": str(account_id or ""),
            "type": OpportunityType.NEW.value,
            "opened_at": datetime.now(zone()).date().isoformat(),
        }
    return {
        "name": opportunity.name,
        "account_id": str(opportunity.account_id),
        "amount": f"{opportunity.amount:.2f}",
        "type": opportunity.type,
        "stage": opportunity.stage,
        "probability": shown(opportunity.probability),
        "opened_at": _day(opportunity.opened_at),
        "closed_at": _day(opportunity.closed_at),
        "lost_reason": opportunity.lost_reason or "",
        "owner_id": shown(opportunity.owner_id),
    }


def _day(moment: datetime | None) -> str:
    return moment.astimezone(zone()).date().isoformat() if moment else ""


def load_item(
    session: Session,
    workspace_id: int,
    values: dict[str, str],
    stages: dict[str, PipelineStage],
) -> tuple[dict, dict[str, list[str]]]:
    """The form as the revenue schema's item (owner by email), or the messages by input
    name, in the user's language. What the schema knows nothing of is checked here: the
    required inputs, a real date, a lost reason for a lost stage."""
    item: dict = {}
    errors: dict[str, list[str]] = {}
    for name in ("name", "account_id", "amount", "stage"):
        if not values.get(name):
            errors[name] = [REQUIRED]
    for name in ("name", "type", "stage", "lost_reason"):
        if values.get(name):
            item[name] = values[name]
    if values.get("account_id"):
        if (
            values["account_id"].isascii()
            and values["account_id"].isdigit()
            and fits_column(Account.id, int(values["account_id"]))
        ):
            item["account_id"] = int(values["account_id"])
        else:
            errors["account_id"] = [PICK_ACCOUNT]
    if values.get("amount"):
        amount = parse_number(values["amount"])
        if amount is None:
            errors["amount"] = [NOT_AMOUNT]
        else:
            item["amount"] = str(amount)
    if values.get("probability"):
        if values["probability"].isascii() and values["probability"].isdigit():
            item["probability"] = int(values["probability"])
        else:
            errors["probability"] = [NOT_PROBABILITY]
    for name in ("opened_at", "closed_at"):
        if values.get(name):
            moment = _moment(values[name])
            if moment is None:
                errors[name] = [NOT_A_DATE]
            elif not usable(moment):
                errors[name] = [OUT_OF_RANGE]
            else:
                item[name] = moment.isoformat()
    if values.get("owner_id"):
        owner = (
            workspace_user(session, workspace_id, int(values["owner_id"]))
            if values["owner_id"].isascii()
            and values["owner_id"].isdigit()
            and fits_column(User.id, int(values["owner_id"]))
            else None
        )
        if owner is None:
            errors["owner_id"] = [NO_SUCH_USER]
        else:
            item["owner_email"] = owner.email
    stage = stages.get(values.get("stage", ""))
    if (
        stage is not None
        and stage.outcome == OpportunityStatus.LOST
        and not values.get("lost_reason")
    ):
        errors["lost_reason"] = [LOST_REASON_NEEDED]
    try:
        loaded = OpportunitySchema().load(item)
    except ValidationError as exc:
        loaded = {}
        for name, messages in schema_messages(exc.normalized_messages()).items():
            errors.setdefault("owner_id" if name == "owner_email" else name, messages)
    return loaded, translated(errors)


def translated(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: [_(message) for message in messages] for name, messages in errors.items()}


def resolve_errors(found: dict[str, list[str]]) -> dict[str, list[str]]:
    """`revenue.opportunities.resolve`'s messages by the form's input names."""
    inputs = {"account": "account_id", "owner_email": "owner_id"}
    return translated({inputs.get(name, name): messages for name, messages in found.items()})


def _moment(text: str) -> datetime | None:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return datetime.combine(day, time(), zone())


# ---- the list's filters ------------------------------------------------------------------

FILTERS = (
    "status",
    "stage",
    "type",
    "owner",
    "q",
    "opened_from",
    "opened_to",
    "closed_from",
    "closed_to",
)


def list_filters(stage_keys, user_ids: set[int]) -> dict[str, str]:
    """The filters as the query string gives them, each "" when unused or not an option."""
    filters = {name: request.args.get(name, "").strip() for name in FILTERS}
    if filters["status"] not in {s.value for s in OpportunityStatus}:
        filters["status"] = ""
    if filters["stage"] not in stage_keys:
        filters["stage"] = ""
    if filters["type"] not in {t.value for t in OpportunityType}:
        filters["type"] = ""
    if filters["owner"] != "none" and not (
        filters["owner"].isascii()
        and filters["owner"].isdigit()
        and int(filters["owner"]) in user_ids
    ):
        filters["owner"] = ""
    for name in ("opened_from", "opened_to", "closed_from", "closed_to"):
        if _date(filters[name]) is None:
            filters[name] = ""
    return filters


def filter_of(filters: dict[str, str]) -> OpportunityFilters:
    """The filters as the directory takes them: days in the workspace's zone, the "to"
    days included."""
    owner = filters["owner"]
    return OpportunityFilters(
        status=filters["status"] or None,
        stage=filters["stage"] or None,
        type=filters["type"] or None,
        owner_id=0 if owner == "none" else int(owner) if owner else None,
        account_query=filters["q"] or None,
        opened_from=_start(filters["opened_from"]),
        opened_before=_start(filters["opened_to"], 1),
        closed_from=_start(filters["closed_from"]),
        closed_before=_start(filters["closed_to"], 1),
    )


def _date(text: str) -> date | None:
    """The day a filter names; None when it is no date or one outside 2000..2100."""
    if not text:
        return date.min  # unused: fine
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return None
    return day if usable(day) else None


def _start(text: str, days_after: int = 0) -> datetime | None:
    if not text:
        return None
    return datetime.combine(date.fromisoformat(text) + timedelta(days=days_after), time(), zone())


# ---- the pipeline form -------------------------------------------------------------------


def pipeline_errors(exc: ValidationError) -> dict[str, list[str]]:
    return translated(flat_errors(exc.messages))
