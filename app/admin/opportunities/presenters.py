"""What the opportunity pages show: amounts in yuan, the labels of types, statuses and
sources, the stage options, and an import's lines by what happened to them."""

from decimal import Decimal

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from models import OpportunitySource, OpportunityStatus, OpportunityType, PipelineStage

TYPE_LABELS = {
    OpportunityType.NEW: _l("New business"),
    OpportunityType.RENEWAL: _l("Renewal"),
    OpportunityType.EXPANSION: _l("Expansion deal"),
}
STATUS_LABELS = {
    OpportunityStatus.OPEN: _l("Open deal"),
    OpportunityStatus.WON: _l("Won"),
    OpportunityStatus.LOST: _l("Lost"),
}
STATUS_BADGES = {OpportunityStatus.WON: "ok", OpportunityStatus.LOST: "error"}
SOURCE_LABELS = {
    OpportunitySource.CRM: _l("CRM"),
    OpportunitySource.IMPORT: _l("Import"),
    OpportunitySource.ADMIN: _l("Typed in"),
}
RESULT_LABELS = {
    "created": _l("Created new"),
    "updated": _l("Updated"),
    "unchanged": _l("Unchanged"),
    "rejected": _l("Rejected"),
}
RESULT_BADGES = {"created": "ok", "updated": "ok", "rejected": "error"}
# The file's columns, as the report names them.
COLUMN_LABELS = {
    "external_id": _l("External id"),
    "name": _l("Opportunity name"),
    "account": _l("Account"),
    "account_domain": _l("Account domain"),
    "amount": _l("Amount"),
    "type": _l("Type"),
    "stage": _l("Stage"),
    "probability": _l("Probability"),
    "opened_at": _l("Opened on"),
    "closed_at": _l("Closed on"),
    "lost_reason": _l("Lost reason"),
    "owner_email": _l("Owner email"),
    "contact_email": _l("Contact email"),
}
OUTCOME_LABELS = {"": _l("Open deal"), "won": _l("Won"), "lost": _l("Lost")}


def money(amount: Decimal | int | None) -> str:
    """¥1,234,500.00; "—" for none."""
    if amount is None:
        return "—"
    return f"¥{Decimal(amount):,.2f}"


def labels() -> dict:
    return {
        "type_labels": TYPE_LABELS,
        "status_labels": STATUS_LABELS,
        "status_badges": STATUS_BADGES,
        "source_labels": SOURCE_LABELS,
        "money": money,
    }


def stage_options(stages: list[PipelineStage]) -> list[tuple[str, str]]:
    return [(stage.key, stage.name) for stage in stages]


def messages_of(found: dict | None) -> list[tuple[str, str]]:
    """An import line's messages by column: (column label, message), in the user's language."""
    return [
        (str(COLUMN_LABELS.get(column, column)) if column else "", _(message))
        for column, messages in (found or {}).items()
        for message in messages
    ]
