"""Lifecycle KPIs: 火眼云's seven lifecycle stages over the workspace's account stages, and
per stage the measures of a period — pipeline created, win rate, deal size, sales cycle,
MQA -> opportunity conversion, dormant accounts won back, renewal and expansion revenue,
NPS, accounts per stage — each one set-based query (never a loop over accounts), filtered
by workspace and optionally by the account's tier and owner.

Periods are [start, end) in UTC; the charts' buckets (month or week) are local to the
workspace's time zone."""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Float,
    and_,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.orm import Session

from core.text import N_
from crm.activity import REACTIVATION_DAYS
from models import (
    Account,
    AccountReactivation,
    Interaction,
    Opportunity,
    OpportunityStatus,
    OpportunityType,
    StageChange,
)
from models.interaction import NPS_PREDICATE
from scoring.stages import stages_of

CENT = Decimal("0.01")
# An account is dormant when none of its people did anything for this many days.
DORMANT_DAYS = REACTIVATION_DAYS
PROMOTER, DETRACTOR = 9, 6  # 9-10 promote, 0-6 detract
GRAINS = ("month", "week")


@dataclass(frozen=True)
class LifecycleStage:
    """One of 火眼云's seven stages, the account stages it covers, and its KPIs."""

    key: str
    name: str
    account_stages: tuple[str, ...]
    kpis: tuple[str, ...]


LIFECYCLE = (
    LifecycleStage("target", N_("Target accounts"), ("target",), ()),
    LifecycleStage("aware", N_("Awareness"), ("aware",), ()),
    LifecycleStage("engaged", N_("Engagement"), ("engaged",), ("dormant_recovery",)),
    LifecycleStage("mqa", N_("Intent (MQA)"), ("mqa",), ("mqa_conversion",)),
    LifecycleStage(
        "opportunity",
        N_("Opportunity"),
        ("meeting", "opportunity"),
        ("pipeline_created", "weighted_pipeline"),
    ),
    LifecycleStage(
        "customer",
        N_("Won customer"),
        ("customer",),
        ("won_revenue", "win_rate", "deal_size", "sales_cycle"),
    ),
    LifecycleStage(
        "expansion",
        N_("Retention and expansion"),
        ("expansion",),
        ("renewal_revenue", "expansion_revenue", "nps"),
    ),
)


@dataclass(frozen=True)
class Scope:
    """Whose KPIs over which period: a workspace, [start, end) in UTC, and the accounts'
    tier and owner when given."""

    workspace_id: int
    start: datetime
    end: datetime
    tier: int | None = None
    owner_id: int | None = None

    def previous(self) -> "Scope":
        """The period of the same length just before."""
        return replace(self, start=self.start - (self.end - self.start), end=self.start)

    def accounts(self) -> list:
        """The conditions on Account (joined) that scope a query."""
        shown = [Account.workspace_id == self.workspace_id]
        if self.tier is not None:
            shown.append(Account.tier == self.tier)
        if self.owner_id is not None:
            shown.append(Account.owner_id == self.owner_id)
        return shown

    @property
    def filtered(self) -> bool:
        return self.tier is not None or self.owner_id is not None


def _money(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT)


def _ratio(part, whole) -> float | None:
    return float(part) / float(whole) if whole else None


def _sum_if(condition, value):
    return func.coalesce(func.sum(case((condition, value), else_=0)), 0)


def _count_if(condition):
    return _sum_if(condition, 1)


def _days_between(session: Session, start, end):
    """Days (fractional) from one timestamp column to another, in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return type_coerce(func.extract("epoch", end - start) / 86400.0, Float)
    return type_coerce(func.julianday(end) - func.julianday(start), Float)


def bucket(session: Session, column, timezone: str, grain: str):
    """The local month ("YYYY-MM") or week (its Monday, "YYYY-MM-DD") of a UTC timestamp."""
    if session.get_bind().dialect.name == "postgresql":
        local = func.timezone(timezone, column)
        if grain == "week":
            return func.to_char(func.date_trunc("week", local), "YYYY-MM-DD")
        return func.to_char(local, "YYYY-MM")
    # SQLite has no time zones: today's offset (right for fixed-offset zones).
    minutes = int(datetime.now(ZoneInfo(timezone)).utcoffset().total_seconds() // 60)
    shift = literal_column(f"'{minutes:+d} minutes'")
    if grain == "week":
        return func.date(column, shift, literal_column("'weekday 0'"), literal_column("'-6 days'"))
    return func.strftime("%Y-%m", column, shift)


def buckets(start: datetime, end: datetime, timezone: str, grain: str) -> list[str]:
    """Every local month or week from start to end, in order, as `bucket` names them."""
    zone = ZoneInfo(timezone)
    first, last = start.astimezone(zone).date(), (end - timedelta(microseconds=1)).astimezone(zone)
    last = last.date()
    names: list[str] = []
    if grain == "week":
        day = first - timedelta(days=first.weekday())
        while day <= last:
            names.append(day.isoformat())
            day += timedelta(days=7)
        return names
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        names.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return names


def _median(rows, value, where, group=None):
    """A select of (group, median of value) over a subquery's rows where `where` holds: the
    middle one or the mean of the middle two, by row number (portable to SQLite)."""
    partition = [group] if group is not None else None
    ranked = select(
        (group if group is not None else literal(0)).label("g"),
        value.label("v"),
        func.row_number().over(partition_by=partition, order_by=value).label("rn"),
        func.count().over(partition_by=partition).label("n"),
    ).select_from(rows)
    ranked = ranked.where(where).subquery()
    middle = ranked.c.rn.in_([(ranked.c.n + 1) // 2, (ranked.c.n + 2) // 2])
    return select(ranked.c.g, func.avg(ranked.c.v)).where(middle).group_by(ranked.c.g)


def _opportunities(scope: Scope):
    """Opportunities of the scope's accounts (both filtered by workspace)."""
    return (
        select()
        .select_from(Opportunity)
        .join(Account, Account.id == Opportunity.account_id)
        .where(Opportunity.workspace_id == scope.workspace_id, *scope.accounts())
    )


# ---- pipeline ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pipeline:
    created: int  # opportunities opened in the period
    created_amount: Decimal
    open: int  # open now, whenever opened
    open_amount: Decimal
    weighted: Decimal  # their amounts times their probabilities


def pipeline(session: Session, scope: Scope) -> Pipeline:
    in_period = and_(Opportunity.opened_at >= scope.start, Opportunity.opened_at < scope.end)
    is_open = Opportunity.status == OpportunityStatus.OPEN
    row = session.execute(
        _opportunities(scope)
        .add_columns(
            _count_if(in_period),
            _sum_if(in_period, Opportunity.amount),
            _count_if(is_open),
            _sum_if(is_open, Opportunity.amount),
            _sum_if(is_open, Opportunity.amount * Opportunity.probability),
        )
        .where(in_period | is_open)
    ).one()
    weighted = _money(Decimal(str(row[4] or 0)) / 100)
    return Pipeline(row[0], _money(row[1]), row[2], _money(row[3]), weighted)


# ---- closed deals -----------------------------------------------------------------------


@dataclass(frozen=True)
class Closed:
    """Opportunities closed (won or lost) in the period."""

    won: int
    lost: int
    won_amount: Decimal
    lost_amount: Decimal
    renewal_amount: Decimal  # won renewals
    expansion_amount: Decimal  # won expansions
    cycle_mean: float | None  # days from opened to won
    cycle_median: float | None

    @property
    def win_rate(self) -> float | None:
        return _ratio(self.won, self.won + self.lost)

    @property
    def win_rate_amount(self) -> float | None:
        return _ratio(self.won_amount, self.won_amount + self.lost_amount)

    @property
    def deal_size(self) -> Decimal | None:
        return (self.won_amount / self.won).quantize(CENT) if self.won else None


def _closed_rows(session: Session, scope: Scope):
    return (
        _opportunities(scope)
        .add_columns(
            Opportunity.status.label("status"),
            Opportunity.type.label("type"),
            Opportunity.amount.label("amount"),
            Opportunity.closed_at.label("closed_at"),
            _days_between(session, Opportunity.opened_at, Opportunity.closed_at).label("days"),
        )
        .where(
            Opportunity.status.in_((OpportunityStatus.WON, OpportunityStatus.LOST)),
            Opportunity.closed_at >= scope.start,
            Opportunity.closed_at < scope.end,
        )
        .cte("closed")
    )


def closed(session: Session, scope: Scope) -> Closed:
    rows = _closed_rows(session, scope)
    won = rows.c.status == OpportunityStatus.WON
    median = _median(rows, rows.c.days, won)
    row = session.execute(
        select(
            _count_if(won),
            _count_if(~won),
            _sum_if(won, rows.c.amount),
            _sum_if(~won, rows.c.amount),
            _sum_if(won & (rows.c.type == OpportunityType.RENEWAL), rows.c.amount),
            _sum_if(won & (rows.c.type == OpportunityType.EXPANSION), rows.c.amount),
            func.avg(case((won, rows.c.days))),
            median.with_only_columns(median.selected_columns[1]).scalar_subquery(),
        )
    ).one()
    return Closed(
        won=row[0],
        lost=row[1],
        won_amount=_money(row[2]),
        lost_amount=_money(row[3]),
        renewal_amount=_money(row[4]),
        expansion_amount=_money(row[5]),
        cycle_mean=None if row[6] is None else float(row[6]),
        cycle_median=None if row[7] is None else float(row[7]),
    )


# ---- over time --------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """One month or week: pipeline opened in it, and deals closed in it."""

    name: str
    created: int = 0
    created_amount: Decimal = Decimal("0.00")
    won: int = 0
    lost: int = 0
    won_by_type: dict[str, Decimal] | None = None
    cycle_median: float | None = None

    @property
    def won_amount(self) -> Decimal:
        return sum((self.won_by_type or {}).values(), Decimal("0.00"))

    @property
    def win_rate(self) -> float | None:
        return _ratio(self.won, self.won + self.lost)


def over_time(session: Session, scope: Scope, timezone: str, grain: str) -> list[Bucket]:
    """Every month or week of the period, empty ones included: three grouped queries
    (pipeline created, deals closed by status and type, the median cycle of wins)."""
    opened = bucket(session, Opportunity.opened_at, timezone, grain)
    created = {
        name: (count, _money(amount))
        for name, count, amount in session.execute(
            _opportunities(scope)
            .add_columns(opened, func.count(), func.sum(Opportunity.amount))
            .where(Opportunity.opened_at >= scope.start, Opportunity.opened_at < scope.end)
            .group_by(opened)
        )
    }
    rows = _closed_rows(session, scope)
    closed_in = bucket(session, rows.c.closed_at, timezone, grain)
    outcomes: dict[str, dict] = {}
    for name, status, kind, count, amount in session.execute(
        select(
            closed_in, rows.c.status, rows.c.type, func.count(), func.sum(rows.c.amount)
        ).group_by(closed_in, rows.c.status, rows.c.type)
    ):
        outcome = outcomes.setdefault(name, {"won": 0, "lost": 0, "by_type": {}})
        outcome[status] += count
        if status == OpportunityStatus.WON:
            outcome["by_type"][kind] = outcome["by_type"].get(kind, 0) + _money(amount)
    medians = dict(
        session.execute(
            _median(rows, rows.c.days, rows.c.status == OpportunityStatus.WON, closed_in)
        ).all()
    )
    shown = []
    for name in buckets(scope.start, scope.end, timezone, grain):
        count, amount = created.get(name, (0, Decimal("0.00")))
        outcome = outcomes.get(name, {"won": 0, "lost": 0, "by_type": {}})
        median = medians.get(name)
        shown.append(
            Bucket(
                name,
                count,
                amount,
                outcome["won"],
                outcome["lost"],
                outcome["by_type"],
                None if median is None else float(median),
            )
        )
    return shown


# ---- MQA -> opportunity -----------------------------------------------------------------


@dataclass(frozen=True)
class MqaConversion:
    """Accounts that became MQA in the period, those of them with an opportunity opened
    since, and the median days from MQA to that first opportunity."""

    mqa: int
    converted: int
    median_days: float | None

    @property
    def rate(self) -> float | None:
        return _ratio(self.converted, self.mqa)


def mqa_conversion(session: Session, scope: Scope, mqa_stage: str = "mqa") -> MqaConversion:
    """An account became MQA at its first move to the MQA stage in the period (its stage
    history) or at its `mqa_since` in the period, whichever is earlier."""
    in_period = lambda column: and_(column >= scope.start, column < scope.end)  # noqa: E731
    entries = union_all(
        select(
            StageChange.subject_id.label("account_id"), StageChange.changed_at.label("at")
        ).where(
            StageChange.workspace_id == scope.workspace_id,
            StageChange.subject == "account",
            StageChange.to_stage == mqa_stage,
            in_period(StageChange.changed_at),
        ),
        select(Account.id, Account.mqa_since).where(
            Account.workspace_id == scope.workspace_id, in_period(Account.mqa_since)
        ),
    ).subquery()
    became = (
        select(entries.c.account_id, func.min(entries.c.at).label("at"))
        .join(Account, Account.id == entries.c.account_id)
        .where(*scope.accounts())
        .group_by(entries.c.account_id)
        .subquery()
    )
    first = (
        select(
            became.c.account_id,
            became.c.at,
            func.min(Opportunity.opened_at).label("opened_at"),
        )
        .select_from(became)
        .outerjoin(
            Opportunity,
            and_(
                Opportunity.workspace_id == scope.workspace_id,
                Opportunity.account_id == became.c.account_id,
                Opportunity.opened_at >= became.c.at,
            ),
        )
        .group_by(became.c.account_id, became.c.at)
        .cte("first_opportunity")
    )
    days = _days_between(session, first.c.at, first.c.opened_at)
    median = _median(first, days, first.c.opened_at.is_not(None))
    row = session.execute(
        select(
            func.count(),
            func.count(first.c.opened_at),
            median.with_only_columns(median.selected_columns[1]).scalar_subquery(),
        ).select_from(first)
    ).one()
    return MqaConversion(row[0], row[1], None if row[2] is None else float(row[2]))


# ---- dormant accounts -------------------------------------------------------------------


@dataclass(frozen=True)
class Recovery:
    """Accounts dormant when the period began (people active before, none in the
    DORMANT_DAYS before it) and those of them whose people did something in the period."""

    dormant: int
    recovered: int

    @property
    def rate(self) -> float | None:
        return _ratio(self.recovered, self.dormant)


def dormant_recovery(session: Session, scope: Scope, days: int = DORMANT_DAYS) -> Recovery:
    """From what crm.activity keeps as interactions arrive, never the interactions: an
    account was dormant at the start when its last activity before it is older than `days`,
    i.e. it has been silent since (`last_active_at`) or its first return at or after the
    start ended a silence that began before then (a reactivation spanning the start); it
    recovered when that return falls in the period. `days` may not be shorter than
    crm.activity.REACTIVATION_DAYS, the shortest silence recorded."""
    if days < REACTIVATION_DAYS:
        raise ValueError(f"dormancy shorter than {REACTIVATION_DAYS} days is not recorded")
    quiet_since = scope.start - timedelta(days=days)
    silent = session.scalar(
        select(func.count()).where(*scope.accounts(), Account.last_active_at < quiet_since)
    )
    spanning = (
        select(AccountReactivation.reactivated_at)
        .where(
            AccountReactivation.workspace_id == scope.workspace_id,
            AccountReactivation.previous_at < quiet_since,
            AccountReactivation.reactivated_at >= scope.start,
        )
        .join(Account, Account.id == AccountReactivation.account_id)
        .where(*scope.accounts())
        .subquery()
    )
    row = session.execute(
        select(func.count(), _count_if(spanning.c.reactivated_at < scope.end))
    ).one()
    return Recovery(silent + row[0], row[1])


# ---- NPS --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Nps:
    """The latest survey.nps answer in the period of each contact."""

    answers: int
    promoters: int
    detractors: int

    @property
    def passives(self) -> int:
        return self.answers - self.promoters - self.detractors

    @property
    def score(self) -> float | None:
        """% promoters - % detractors, -100..100."""
        if not self.answers:
            return None
        return 100.0 * (self.promoters - self.detractors) / self.answers


def nps(session: Session, scope: Scope) -> Nps:
    answer = Interaction.properties["score"].as_float()
    latest = func.row_number().over(
        partition_by=Interaction.contact_id,
        order_by=(Interaction.occurred_at.desc(), Interaction.id.desc()),
    )
    answers = select(answer.label("score"), latest.label("latest")).where(
        Interaction.workspace_id == scope.workspace_id,
        literal_column(NPS_PREDICATE),  # a literal: the partial index's predicate
        Interaction.occurred_at >= scope.start,
        Interaction.occurred_at < scope.end,
    )
    if scope.filtered:
        answers = answers.join(Account, Account.id == Interaction.account_id).where(
            *scope.accounts()
        )
    answers = answers.subquery()
    row = session.execute(
        select(
            func.count(),
            _count_if(answers.c.score >= PROMOTER),
            _count_if(answers.c.score <= DETRACTOR),
        ).where(answers.c.latest == 1)
    ).one()
    return Nps(row[0], row[1], row[2])


# ---- stages -----------------------------------------------------------------------------


def accounts_per_stage(session: Session, scope: Scope) -> dict[str, int]:
    """Account stage -> the scope's accounts at it now."""
    return dict(
        session.execute(
            select(Account.stage, func.count())
            .where(*scope.accounts(), Account.stage.is_not(None))
            .group_by(Account.stage)
        ).all()
    )


def furthest_stage(session: Session, scope: Scope, stages: list[str]) -> dict[str, int]:
    """Account stage -> the scope's accounts whose furthest stage so far (in their stage
    history, or now) is that one; stages outside `stages` are ignored. The accounts are
    counted by the stages they reached (`accounts.stages_reached`, kept by scoring.stages)
    and their stage now: a few dozen groups, ranked here."""
    position = {key: index for index, key in enumerate(stages)}
    counts: dict[str, int] = {}
    for reached, now, count in session.execute(
        select(Account.stages_reached, Account.stage, func.count())
        .where(
            *scope.accounts(),
            or_(Account.stages_reached.is_not(None), Account.stage.is_not(None)),
        )
        .group_by(Account.stages_reached, Account.stage)
    ):
        ranked = [position[key] for key in stages_of(reached) | {now} if key in position]
        if ranked:
            furthest = stages[max(ranked)]
            counts[furthest] = counts.get(furthest, 0) + count
    return counts


@dataclass(frozen=True)
class LifecycleRow:
    """A lifecycle stage: accounts at it now, accounts that reached it or a later one, and
    the share of those that went on to the next stage."""

    stage: LifecycleStage
    accounts: int
    reached: int
    next_rate: float | None


def lifecycle(session: Session, scope: Scope, stages: list[str]) -> list[LifecycleRow]:
    """The seven stages over the workspace's own account stages (those it lacks are
    skipped; a lifecycle stage none of whose account stages exist is left out)."""
    now = accounts_per_stage(session, scope)
    furthest = furthest_stage(session, scope, stages)
    shown = [(stage, [key for key in stage.account_stages if key in stages]) for stage in LIFECYCLE]
    shown = [(stage, keys) for stage, keys in shown if keys]
    rows, reached = [], 0
    for stage, keys in reversed(shown):
        reached += sum(furthest.get(key, 0) for key in keys)
        rows.append((stage, sum(now.get(key, 0) for key in keys), reached))
    rows.reverse()
    return [
        LifecycleRow(
            stage,
            accounts,
            reached,
            _ratio(rows[index + 1][2], reached) if index + 1 < len(rows) else None,
        )
        for index, (stage, accounts, reached) in enumerate(rows)
    ]


# ---- everything a dashboard shows -------------------------------------------------------


@dataclass(frozen=True)
class Kpis:
    pipeline: Pipeline
    closed: Closed
    mqa: MqaConversion
    recovery: Recovery
    nps: Nps


def kpis(session: Session, scope: Scope, mqa_stage: str = "mqa") -> Kpis:
    """Every period KPI of the scope."""
    return Kpis(
        pipeline=pipeline(session, scope),
        closed=closed(session, scope),
        mqa=mqa_conversion(session, scope, mqa_stage),
        recovery=dormant_recovery(session, scope),
        nps=nps(session, scope),
    )
