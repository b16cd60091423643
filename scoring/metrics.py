"""The ABM metrics of a workspace's target accounts and its stage funnel, each a grouped
query or two, never a loop over accounts: reach, buying-committee coverage, awareness,
engagement and impact as they stand, and day by day from the account snapshots; the
accounts and contacts at each stage, and one account's daily trend."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Row, and_, case, distinct, func, or_, select
from sqlalchemy.orm import Session

from core.days import local_day
from models import (
    Account,
    AccountSnapshot,
    Contact,
    Identity,
    IdentityKind,
    Interaction,
    ScoreEntry,
)
from scoring.model import Model, Scale


def stages_from(model: Model, key: str | None) -> list[str]:
    """The model's stage keys from `key` on, in its order; none if it has no such stage."""
    keys = [stage.key for stage in model.stages]
    return keys[keys.index(key) :] if key in keys else []


def _thresholds(model: Model) -> tuple[list[str], list[str], list[str]]:
    """The stages that count as aware, engaged and impact (MQA): the ones the stage rules
    move to, and every later one."""
    rules = model.stage_rules
    return (
        stages_from(model, rules.aware or "aware"),
        stages_from(model, rules.engaged or "engaged"),
        stages_from(model, rules.mqa or "mqa"),
    )


def _count_if(condition):
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


@dataclass(frozen=True)
class FunnelStage:
    key: str
    accounts: int  # at this stage now
    reached: int  # at this stage or a later one


def stage_funnel(session: Session, workspace_id: int, model: Model) -> list[FunnelStage]:
    """The workspace's accounts per stage, in the model's order (stages it no longer has
    are left out)."""
    counts = dict(
        session.execute(
            select(Account.stage, func.count())
            .where(Account.workspace_id == workspace_id, Account.stage.is_not(None))
            .group_by(Account.stage)
        ).all()
    )
    funnel, reached = [], 0
    for stage in reversed(model.stages):
        reached += counts.get(stage.key, 0)
        funnel.append(FunnelStage(stage.key, counts.get(stage.key, 0), reached))
    return funnel[::-1]


@dataclass(frozen=True)
class AbmMetrics:
    """Counts of target accounts; the shares are of all target accounts."""

    targets: int
    reached: int  # at least one known contact
    aware: int  # any interaction: a ledger entry, or the aware stage or later
    engaged: int  # engagement points, or the engaged stage or later
    impact: int  # at the MQA stage or later
    impact_acv: float  # their expected annual contract value, summed
    committee_roles: tuple[str, ...]
    roles_known: dict[str, int]  # committee role -> target accounts where someone holds it

    def share(self, count: int) -> float:
        return count / self.targets if self.targets else 0.0

    @property
    def coverage(self) -> float:
        """Known committee roles over every role of every target account."""
        slots = self.targets * len(self.committee_roles)
        return sum(self.roles_known.values()) / slots if slots else 0.0


def abm_metrics(
    session: Session, workspace_id: int, model: Model, committee_roles: Sequence[str]
) -> AbmMetrics:
    """Two queries: the five counts over the target accounts, then the roles known."""
    aware, engaged, impact = _thresholds(model)
    of_account = and_(Contact.account_id == Account.id, Contact.merged_into_id.is_(None))
    has_contact = select(Contact.id).where(of_account).exists()
    has_points = (
        select(ScoreEntry.id).join(Contact, Contact.id == ScoreEntry.contact_id).where(of_account)
    ).exists()
    at_impact = Account.stage.in_(impact)
    targets = (Account.workspace_id == workspace_id, Account.is_target.is_(True))
    row = session.execute(
        select(
            func.count(),
            _count_if(has_contact),
            _count_if(or_(Account.stage.in_(aware), has_points)),
            _count_if(or_(Account.engagement_points > 0, Account.stage.in_(engaged))),
            _count_if(at_impact),
            func.coalesce(func.sum(case((at_impact, Account.acv), else_=0.0)), 0.0),
        ).where(*targets)
    ).one()
    roles_known = dict(
        session.execute(
            select(Contact.role, func.count(distinct(Contact.account_id)))
            .join(Account, Account.id == Contact.account_id)
            .where(
                *targets,
                Contact.workspace_id == workspace_id,
                Contact.merged_into_id.is_(None),
                Contact.role.in_(committee_roles),
            )
            .group_by(Contact.role)
        ).all()
    )
    return AbmMetrics(
        targets=row[0],
        reached=row[1],
        aware=row[2],
        engaged=row[3],
        impact=row[4],
        impact_acv=float(row[5] or 0.0),
        committee_roles=tuple(committee_roles),
        roles_known={role: roles_known.get(role, 0) for role in committee_roles},
    )


@dataclass(frozen=True)
class AbmDay:
    """The target accounts snapshotted on a day, and how many were where."""

    day: date
    accounts: int
    aware: int  # engaged contacts, or the aware stage or later
    engaged: int  # engagement points, or the engaged stage or later
    impact: int
    surging: int


def abm_trend(session: Session, workspace_id: int, model: Model, since: date) -> list[AbmDay]:
    """Day by day from `since`, one grouped query over the snapshots of today's target
    accounts; days without snapshots are absent."""
    aware, engaged, impact = _thresholds(model)
    snapshot = AccountSnapshot
    rows = session.execute(
        select(
            snapshot.day,
            func.count(),
            _count_if(or_(snapshot.stage.in_(aware), snapshot.engaged_contacts > 0)),
            _count_if(or_(snapshot.engagement_points > 0, snapshot.stage.in_(engaged))),
            _count_if(snapshot.stage.in_(impact)),
            _count_if(snapshot.surging.is_(True)),
        )
        .join(Account, Account.id == snapshot.account_id)
        .where(
            snapshot.workspace_id == workspace_id,
            snapshot.day >= since,
            Account.is_target.is_(True),
        )
        .group_by(snapshot.day)
        .order_by(snapshot.day)
    ).all()
    return [AbmDay(*row) for row in rows]


def stage_counts(session: Session, workspace_id: int) -> dict[str, dict[str, int]]:
    """How many accounts and contacts hold each stage key (any key, in the model or not)."""
    return {
        subject: dict(
            session.execute(
                select(model.stage, func.count())
                .where(model.workspace_id == workspace_id, model.stage.is_not(None))
                .group_by(model.stage)
            ).all()
        )
        for subject, model in (("accounts", Account), ("contacts", Contact))
    }


def account_trend(
    session: Session, account: Account, since: date, scale: Scale | None = None
) -> list[tuple]:
    """The account's daily snapshots after `since`, oldest first: (day, score on the 0-100
    scale, tier, stage, mqa, surging). A snapshot from before the scale reads its raw
    points on `scale` (the model's)."""
    scale = scale or Scale()
    rows = session.execute(
        select(
            AccountSnapshot.day,
            AccountSnapshot.scaled_score,
            AccountSnapshot.score,
            AccountSnapshot.tier,
            AccountSnapshot.stage,
            AccountSnapshot.mqa,
            AccountSnapshot.surging,
        )
        .where(
            AccountSnapshot.workspace_id == account.workspace_id,
            AccountSnapshot.account_id == account.id,
            AccountSnapshot.day > since,
        )
        .order_by(AccountSnapshot.day)
    ).all()
    return [
        (day, scaled if scaled is not None else scale.of(raw), *rest)
        for day, scaled, raw, *rest in rows
    ]


def follower_count(session: Session, workspace_id: int) -> int:
    """The workspace's OA identities that follow now."""
    return session.scalar(
        select(func.count()).where(
            Identity.workspace_id == workspace_id,
            Identity.kind == IdentityKind.OPENID,
            Identity.following.is_(True),
        )
    )


def interaction_count(
    session: Session, workspace_id: int, since: datetime, kind: str | None = None
) -> int:
    """The workspace's interactions since `since` (of one kind when given)."""
    shown = [Interaction.workspace_id == workspace_id, Interaction.occurred_at >= since]
    if kind is not None:
        shown.append(Interaction.kind == kind)
    return session.scalar(select(func.count()).where(*shown))


def daily_interactions(
    session: Session, workspace_id: int, tz: str, since: datetime, kind: str | None = None
) -> dict[str, int]:
    """Local day (in `tz`) -> the workspace's interactions that day since `since`
    (of one kind when given)."""
    day = local_day(session, Interaction.occurred_at, tz)
    shown = [Interaction.workspace_id == workspace_id, Interaction.occurred_at >= since]
    if kind is not None:
        shown.append(Interaction.kind == kind)
    return dict(session.execute(select(day, func.count()).where(*shown).group_by(day)).all())


def daily_interactions_by_kind(
    session: Session, workspace_id: int, tz: str, since: datetime
) -> list[Row]:
    """(kind, local day in `tz`, count) of the workspace's interactions since `since`."""
    day = local_day(session, Interaction.occurred_at, tz)
    return session.execute(
        select(Interaction.kind, day, func.count())
        .where(Interaction.workspace_id == workspace_id, Interaction.occurred_at >= since)
        .group_by(Interaction.kind, day)
    ).all()
