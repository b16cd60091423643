"""What the opportunity pages read: the filtered list with its totals, one opportunity's
history and the account stage moves it caused, an account's opportunities, and the
accounts a form offers."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from models import (
    Account,
    Opportunity,
    OpportunityChange,
    OpportunityStatus,
    StageChange,
    User,
)


@dataclass(frozen=True)
class OpportunityFilters:
    """The list's filters; None (or empty) leaves one out. `owner_id` 0 is "no owner"."""

    status: str | None = None
    stage: str | None = None
    type: str | None = None
    owner_id: int | None = None
    account_query: str | None = None
    opened_from: datetime | None = None
    opened_before: datetime | None = None
    closed_from: datetime | None = None
    closed_before: datetime | None = None


def mine_clause(workspace_id: int, user_id: int) -> ColumnElement[bool]:
    """A WHERE clause on Opportunity: the user owns it or owns its account."""
    account = aliased(Account)
    own_account = exists().where(
        account.id == Opportunity.account_id,
        account.workspace_id == workspace_id,
        account.owner_id == user_id,
    )
    return and_(
        Opportunity.workspace_id == workspace_id,
        or_(Opportunity.owner_id == user_id, own_account),
    )


def opportunities_query(
    workspace_id: int, filters: OpportunityFilters, mine_of: int | None = None
) -> Select:
    """(opportunity, account name, owner name) rows, newest opened first; `mine_of`: only
    the user's (see `mine_clause`)."""
    owner = aliased(User)
    query = (
        select(Opportunity, Account.name, owner.name)
        .join(
            Account,
            and_(Account.id == Opportunity.account_id, Account.workspace_id == workspace_id),
        )
        .outerjoin(
            owner, and_(owner.id == Opportunity.owner_id, owner.workspace_id == workspace_id)
        )
        .where(Opportunity.workspace_id == workspace_id, *_conditions(filters))
        .order_by(Opportunity.opened_at.desc(), Opportunity.id.desc())
    )
    if mine_of is not None:
        query = query.where(mine_clause(workspace_id, mine_of))
    return query


def _conditions(filters: OpportunityFilters) -> list:
    conditions = []
    if filters.status:
        conditions.append(Opportunity.status == filters.status)
    if filters.stage:
        conditions.append(Opportunity.stage == filters.stage)
    if filters.type:
        conditions.append(Opportunity.type == filters.type)
    if filters.owner_id == 0:
        conditions.append(Opportunity.owner_id.is_(None))
    elif filters.owner_id is not None:
        conditions.append(Opportunity.owner_id == filters.owner_id)
    if filters.account_query:
        pattern = "%" + filters.account_query.replace("\\", "").replace("%", "").replace("_", "")
        conditions.append(Account.name.ilike(pattern + "%"))
    if filters.opened_from:
        conditions.append(Opportunity.opened_at >= filters.opened_from)
    if filters.opened_before:
        conditions.append(Opportunity.opened_at < filters.opened_before)
    if filters.closed_from:
        conditions.append(Opportunity.closed_at >= filters.closed_from)
    if filters.closed_before:
        conditions.append(Opportunity.closed_at < filters.closed_before)
    return conditions


@dataclass(frozen=True)
class Totals:
    count: int
    pipeline: Decimal  # the open ones' amounts
    weighted: Decimal  # the open ones' amounts times their probability
    won: Decimal


def totals(session: Session, query: Select) -> Totals:
    """The totals of what `query` (from `opportunities_query`) lists, in one query."""
    listed = query.order_by(None).subquery()
    row = aliased(Opportunity, listed)
    is_open = row.status == OpportunityStatus.OPEN
    count, pipeline, weighted, won = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(row.amount).filter(is_open), 0),
            func.coalesce(func.sum(row.amount * row.probability).filter(is_open), 0),
            func.coalesce(func.sum(row.amount).filter(row.status == OpportunityStatus.WON), 0),
        )
    ).one()
    cents = Decimal("0.01")
    return Totals(
        count,
        Decimal(pipeline).quantize(cents),
        (Decimal(weighted) / 100).quantize(cents),
        Decimal(won).quantize(cents),
    )


def history(session: Session, opportunity: Opportunity) -> list[tuple]:
    """(change, who's name) of the opportunity, newest first."""
    return list(
        session.execute(
            select(OpportunityChange, User.name)
            .outerjoin(
                User,
                and_(
                    User.id == OpportunityChange.user_id,
                    User.workspace_id == opportunity.workspace_id,
                ),
            )
            .where(
                OpportunityChange.workspace_id == opportunity.workspace_id,
                OpportunityChange.opportunity_id == opportunity.id,
            )
            .order_by(OpportunityChange.changed_at.desc(), OpportunityChange.id.desc())
        ).all()
    )


def stage_moves(session: Session, opportunity: Opportunity) -> list[tuple]:
    """(stage change, who's name) of the account that this opportunity caused: their reason
    names it (revenue.opportunities.move_account_stage writes it so)."""
    prefix = f"商机「{opportunity.name}」：".replace("%", "").replace("_", "")
    return list(
        session.execute(
            select(StageChange, User.name)
            .outerjoin(User, User.id == StageChange.user_id)
            .where(
                StageChange.workspace_id == opportunity.workspace_id,
                StageChange.subject == "account",
                StageChange.subject_id == opportunity.account_id,
                StageChange.reason.like(prefix + "%"),
            )
            .order_by(StageChange.changed_at.desc(), StageChange.id.desc())
        ).all()
    )


def account_opportunities(session: Session, workspace_id: int, account_id: int) -> list[tuple]:
    """(opportunity, owner name) of one account: open ones first, then newest."""
    return list(
        session.execute(
            select(Opportunity, User.name)
            .outerjoin(
                User, and_(User.id == Opportunity.owner_id, User.workspace_id == workspace_id)
            )
            .where(Opportunity.workspace_id == workspace_id, Opportunity.account_id == account_id)
            .order_by(
                (Opportunity.status == OpportunityStatus.OPEN).desc(),
                Opportunity.opened_at.desc(),
                Opportunity.id.desc(),
            )
        ).all()
    )


def account_choices(
    session: Session, workspace_id: int, owner_id: int | None = None, limit: int = 1000
) -> list[tuple[int, str]]:
    """(id, name) of the accounts a form offers, by name; `owner_id`: only theirs."""
    query = select(Account.id, Account.name).where(Account.workspace_id == workspace_id)
    if owner_id is not None:
        query = query.where(Account.owner_id == owner_id)
    return [tuple(row) for row in session.execute(query.order_by(Account.name).limit(limit))]


def by_request_key(session: Session, workspace_id: int, request_key: str) -> Opportunity | None:
    """The opportunity an admin form with this nonce made (a second POST of it finds it)."""
    return session.scalar(
        select(Opportunity).where(
            Opportunity.workspace_id == workspace_id, Opportunity.request_key == request_key
        )
    )
