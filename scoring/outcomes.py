"""The facts "what predicts wins" reads from a workspace: its accounts, their outcomes
(models.Opportunity: any opportunity, a won one, a lost one and no won one), the points
each score rule gave their people in the window before the outcome, the MQA rules they
met before it, and their tier. Four queries; scoring.wins does the arithmetic.

An account's outcome time is when its first opportunity opened; an account without one is
read as of now. Its tier is today's (the snapshots keep tiers by day, not by rule).
"""

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from models import Account, Contact, Opportunity, ScoreEntry, StageChange
from models.revenue import OpportunityStatus
from scoring.model import Model
from scoring.wins import Facts

WINDOW_DAYS = 180  # the points that count: those in this many days before the outcome
MQA_REASON = "MQA rule: "  # scoring.engine's stage history for an MQA entry


def outcome_facts(
    session: Session, workspace_id: int, model: Model, now: datetime, window_days: int = WINDOW_DAYS
) -> Facts:
    accounts = dict(
        session.execute(
            select(Account.id, Account.tier).where(Account.workspace_id == workspace_id)
        ).all()
    )
    won_status, lost_status = OpportunityStatus.WON.value, OpportunityStatus.LOST.value
    outcomes = session.execute(
        select(
            Opportunity.account_id,
            func.min(Opportunity.opened_at),
            func.max(case((Opportunity.status == won_status, 1), else_=0)),
            func.max(case((Opportunity.status == lost_status, 1), else_=0)),
        )
        .where(Opportunity.workspace_id == workspace_id)
        .group_by(Opportunity.account_id)
    ).all()
    opened = {account_id: first for account_id, first, _won, _lost in outcomes}
    won = {account_id for account_id, _first, w, _lost in outcomes if w}
    lost = {account_id for account_id, _first, w, lost_ in outcomes if lost_ and not w}
    window = timedelta(days=window_days)
    points: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    # Accounts without an opportunity: the window before now, summed in SQL.
    has_opportunity = (
        select(Opportunity.id)
        .where(
            Opportunity.workspace_id == workspace_id,
            Opportunity.account_id == Contact.account_id,
        )
        .exists()
    )
    of_workspace = and_(
        ScoreEntry.workspace_id == workspace_id,
        Contact.workspace_id == workspace_id,
        Contact.account_id.is_not(None),
    )
    for account_id, key, total in session.execute(
        select(Contact.account_id, ScoreEntry.rule_key, func.sum(ScoreEntry.points))
        .join(Contact, Contact.id == ScoreEntry.contact_id)
        .where(of_workspace, ~has_opportunity, ScoreEntry.occurred_at >= now - window)
        .group_by(Contact.account_id, ScoreEntry.rule_key)
    ):
        points[account_id][key] += total or 0.0
    # Accounts with one: each its own window, before its first opportunity opened.
    if opened:
        first = (
            select(
                Opportunity.account_id.label("account_id"),
                func.min(Opportunity.opened_at).label("opened_at"),
            )
            .where(Opportunity.workspace_id == workspace_id)
            .group_by(Opportunity.account_id)
            .subquery()
        )
        earliest = min(opened.values()) - window
        for account_id, key, at, value in session.execute(
            select(
                Contact.account_id, ScoreEntry.rule_key, ScoreEntry.occurred_at, ScoreEntry.points
            )
            .join(Contact, Contact.id == ScoreEntry.contact_id)
            .join(first, first.c.account_id == Contact.account_id)
            .where(
                of_workspace,
                ScoreEntry.occurred_at < first.c.opened_at,
                ScoreEntry.occurred_at >= earliest,
            )
        ):
            if at >= opened[account_id] - window:
                points[account_id][key] += value
    mqa: dict[str, set[int]] = defaultdict(set)
    for account_id, reason, at in session.execute(
        select(StageChange.subject_id, StageChange.reason, StageChange.changed_at).where(
            StageChange.workspace_id == workspace_id,
            StageChange.subject == "account",
            StageChange.reason.startswith(MQA_REASON),
        )
    ):
        if account_id in opened and at >= opened[account_id]:
            continue  # met after the outcome: not a predictor of it
        mqa[reason.removeprefix(MQA_REASON)].add(account_id)
    return Facts(
        accounts=set(accounts),
        points={a: dict(by_rule) for a, by_rule in points.items()},
        mqa=dict(mqa),
        tiers=accounts,
        opportunity=set(opened),
        won=won,
        lost=lost,
    )
