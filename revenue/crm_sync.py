"""A CRM's opportunities, item by item (the API's PUT and its batch): the external id
checked, the item through OpportunitySchema, its references resolved in the workspace and
the opportunity created, updated or left as it was.

Each item runs in a savepoint of its own: a rejected item (an unknown stage after its
account was created, say) leaves nothing behind, and one bad item never costs the others.
Two requests creating the same new external id at once: the one that loses the unique
constraint runs again as an update of the winner's row.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Account, Opportunity, OpportunitySource, PipelineStage, User, utcnow
from revenue.opportunities import OpportunitySchema, resolve, save_opportunity

MAX_BATCH = 1000
EXTERNAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@\-]{0,99}")
BAD_EXTERNAL_ID = (
    "1 to 100 characters: letters, digits and . _ - : @, starting with a letter or digit."
)
NOT_AN_OBJECT = "An opportunity is a JSON object."
TOO_PRECISE = "At most 2 decimal places: amounts are CNY, never rounded."
LOST_RACE = "Saved by another request at the same moment: send it again."
SCHEMA = OpportunitySchema()


@dataclass
class ItemResult:
    status: str  # created / updated / unchanged / rejected
    opportunity: Opportunity | None = None
    errors: dict = field(default_factory=dict)
    warnings: dict = field(default_factory=dict)


class _Rejected(Exception):
    def __init__(self, errors: dict, warnings: dict):
        super().__init__("rejected")
        self.errors, self.warnings = errors, warnings


def external_id_problem(external_id) -> str | None:
    if not isinstance(external_id, str) or not EXTERNAL_ID.fullmatch(external_id):
        return BAD_EXTERNAL_ID
    return None


def _amount_problem(document: dict) -> str | None:
    """The schema quantizes to fen; a CRM's 100.005 is refused, not rounded to 100.00."""
    amount = document.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, str | int | Decimal):
        return None
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        return None  # the schema says what is wrong with it
    if value.is_finite() and value != value.quantize(Decimal("0.01"), rounding="ROUND_DOWN"):
        return TOO_PRECISE
    return None


def sync_item(
    session: Session,
    workspace_id: int,
    external_id,
    document,
    *,
    stages: dict[str, PipelineStage] | None = None,
    account_stages: tuple | None = None,
    now: datetime | None = None,
) -> ItemResult:
    """Create, update or leave the workspace's opportunity with this external id as the
    document states it (JSON numbers already read as Decimal). Flushed, not committed."""
    if not isinstance(document, dict):
        return ItemResult("rejected", errors={"_schema": [NOT_AN_OBJECT]})
    problem = external_id_problem(external_id)
    if problem:
        return ItemResult("rejected", errors={"external_id": [problem]})
    try:
        values = SCHEMA.load(document)
    except ValidationError as exc:
        errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        return ItemResult("rejected", errors=errors)
    if problem := _amount_problem(document):
        return ItemResult("rejected", errors={"amount": [problem]})
    now = now or utcnow()
    for attempt in range(2):
        try:
            with session.begin_nested():
                return _apply(
                    session, workspace_id, external_id, values, (stages, account_stages), now
                )
        except _Rejected as rejected:
            return ItemResult("rejected", errors=rejected.errors, warnings=rejected.warnings)
        except IntegrityError:
            if attempt:
                return ItemResult("rejected", errors={"external_id": [LOST_RACE]})
    raise AssertionError("unreachable")


def _apply(session, workspace_id, external_id, values, loaded, now) -> ItemResult:
    stages, account_stages = loaded
    existing = session.scalar(
        select(Opportunity)
        .where(Opportunity.workspace_id == workspace_id, Opportunity.external_id == external_id)
        .with_for_update()
    )
    resolved = resolve(session, workspace_id, values, existing, stages)
    if resolved.errors:
        raise _Rejected(resolved.errors, resolved.warnings)  # the savepoint undoes it all
    saved = save_opportunity(
        session,
        workspace_id,
        values,
        resolved,
        source=OpportunitySource.CRM,
        external_id=external_id,
        existing=existing,
        now=now,
        account_stages=account_stages,
    )
    session.flush()
    return ItemResult(saved.status, saved.opportunity, warnings=resolved.warnings)


def find_opportunity(session: Session, workspace_id: int, external_id: str) -> Opportunity | None:
    return session.scalar(
        select(Opportunity).where(
            Opportunity.workspace_id == workspace_id, Opportunity.external_id == external_id
        )
    )


def _stamp(when: datetime | None) -> str | None:
    return when.isoformat() if when else None


def opportunity_document(session: Session, opportunity: Opportunity) -> dict:
    """The opportunity as the API answers it: the amount a decimal string, never a float."""
    account = session.execute(
        select(Account.id, Account.name, Account.domain).where(
            Account.workspace_id == opportunity.workspace_id,
            Account.id == opportunity.account_id,
        )
    ).one()
    owner_email = None
    if opportunity.owner_id is not None:
        owner_email = session.scalar(
            select(User.email).where(
                User.workspace_id == opportunity.workspace_id, User.id == opportunity.owner_id
            )
        )
    return {
        "id": opportunity.id,
        "external_id": opportunity.external_id,
        "name": opportunity.name,
        "amount": str(Decimal(opportunity.amount).quantize(Decimal("0.01"))),
        "type": opportunity.type,
        "stage": opportunity.stage,
        "probability": opportunity.probability,
        "status": opportunity.status,
        "lost_reason": opportunity.lost_reason,
        "opened_at": _stamp(opportunity.opened_at),
        "closed_at": _stamp(opportunity.closed_at),
        "account": {"id": account.id, "name": account.name, "domain": account.domain},
        "owner_email": owner_email,
        "contact_id": opportunity.contact_id,
        "source": opportunity.source,
        "updated_at": _stamp(opportunity.updated_at),
    }
