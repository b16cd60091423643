"""The sales home: a salesperson's accounts ranked by heat, what changed on them since
yesterday, their tasks due, and their customers who read something today.

Each part is one set-based query over the workspace, narrowed to one user's accounts and
people (sales.ownership) or, for a marketer's overview, to nobody's in particular.
"Since yesterday" is the last 24 hours; a score rise is measured against yesterday's
end-of-day snapshot (scoring writes one per account and day, in the workspace's time zone).
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session, aliased

from crm.accounts import BUYING_COMMITTEE
from models import (
    Account,
    AccountEvent,
    AccountEventKind,
    AccountSnapshot,
    Contact,
    Interaction,
    StageChange,
    Task,
    TaskStatus,
)
from sales.ownership import owned_accounts_clause, owned_contacts_clause

HOT_SHOWN = 20
CHANGES_SHOWN = 30
TASKS_SHOWN = 50
READERS_SHOWN = 30
# Today's reading rows looked at (the newest): enough for any one person's day.
READING_ROWS = 2000
# The smallest score rise worth a line.
MIN_RISE = 1.0
# Heat: an account entering MQA outranks everything; then new decision makers, a surge
# (by its ratio), then the score's rise in points.
HEAT_MQA = 1000.0
HEAT_COMMITTEE = 200.0
HEAT_SURGE = 100.0
# The owner moves and handovers a salesperson hears of on their home.
OWNER_EVENTS = (
    AccountEventKind.ROUTED,
    AccountEventKind.OWNER_CHANGED,
    AccountEventKind.TRANSFER,
    AccountEventKind.SLA_REASSIGNED,
)
READING_KINDS = ("content.view", "content.read")


@dataclass(frozen=True)
class Window:
    """The times the home reads: now, 24 hours back, the start of today and yesterday's
    date, in the workspace's time zone."""

    now: datetime
    since: datetime
    today_start: datetime
    today_end: datetime
    yesterday: date

    @classmethod
    def at(cls, now: datetime, timezone: str) -> "Window":
        local = now.astimezone(ZoneInfo(timezone))
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return cls(
            now=now,
            since=now - timedelta(days=1),
            today_start=midnight.astimezone(now.tzinfo),
            today_end=(midnight + timedelta(days=1)).astimezone(now.tzinfo),
            yesterday=local.date() - timedelta(days=1),
        )


@dataclass(frozen=True)
class Scope:
    """Whose home: one user's accounts and people, or (user_id None) the whole workspace's."""

    workspace_id: int
    user_id: int | None

    def accounts(self) -> ColumnElement[bool]:
        if self.user_id is None:
            return Account.workspace_id == self.workspace_id
        return owned_accounts_clause(self.workspace_id, self.user_id)

    def contacts(self) -> ColumnElement[bool]:
        if self.user_id is None:
            return Contact.workspace_id == self.workspace_id
        return owned_contacts_clause(self.workspace_id, self.user_id)


@dataclass(frozen=True)
class Reason:
    """Why an account is hot: kind mqa, surge (ratio), committee (name, title, role) or
    score (delta)."""

    kind: str
    ratio: float | None = None
    delta: float | None = None
    name: str | None = None
    title: str | None = None
    role: str | None = None


@dataclass
class HotAccount:
    id: int
    name: str
    score: float
    tier: int | None
    stage: str | None
    mqa: bool
    mqa_since: datetime | None
    owner_id: int | None
    scaled_score: float = 0.0  # what people read, 0-100; `score` is the raw points
    heat: float = 0.0
    reasons: list[Reason] = field(default_factory=list)


@dataclass(frozen=True)
class NewPerson:
    contact_id: int
    name: str | None
    title: str | None
    role: str | None
    account_id: int
    account: str
    first_seen_at: datetime


@dataclass(frozen=True)
class Change:
    """One thing that happened on an account: kind mqa, stage (from_stage, to_stage),
    person (contact), or an owner event (the AccountEvent's kind and text)."""

    kind: str
    at: datetime
    account_id: int
    account: str
    text: str | None = None
    from_stage: str | None = None
    to_stage: str | None = None
    contact_id: int | None = None
    contact: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class DueTask:
    task: Task
    account: str | None
    contact: str | None
    overdue: bool


@dataclass
class Reader:
    contact_id: int
    name: str | None
    account_id: int | None
    account: str | None
    titles: list[str]
    minutes: float
    last_at: datetime


@dataclass
class Home:
    hot: list[HotAccount]
    changes: list[Change]
    tasks: list[DueTask]
    readers: list[Reader]
    # How many accounts are the user's at all (0: a new salesperson's empty home).
    account_count: int


def home(session: Session, scope: Scope, window: Window) -> Home:
    people = new_people(session, scope, window)
    candidates = _hot_candidates(session, scope, window, people)
    return Home(
        hot=hot_accounts(session, scope, candidates),
        changes=changes(session, scope, window, candidates, people),
        tasks=tasks_due(session, scope, window),
        readers=readers_today(session, scope, window),
        account_count=account_count(session, scope),
    )


def account_count(session: Session, scope: Scope) -> int:
    return session.scalar(select(func.count(Account.id)).where(scope.accounts())) or 0


def new_people(session: Session, scope: Scope, window: Window) -> list[NewPerson]:
    """People first seen in the last 24 hours on the scope's accounts, newest first."""
    rows = session.execute(
        select(
            Contact.id,
            Contact.name,
            Contact.title,
            Contact.role,
            Account.id,
            Account.name,
            Contact.first_seen_at,
        )
        .join(Account, Account.id == Contact.account_id)
        .where(
            Contact.workspace_id == scope.workspace_id,
            Contact.merged_into_id.is_(None),
            Contact.first_seen_at >= window.since,
            scope.accounts(),
        )
        .order_by(Contact.first_seen_at.desc(), Contact.id.desc())
        .limit(CHANGES_SHOWN * 4)
    ).all()
    return [NewPerson(*row) for row in rows]


def _hot_candidates(
    session: Session, scope: Scope, window: Window, people: list[NewPerson]
) -> dict[int, HotAccount]:
    """Every account of the scope with a reason to be hot, its heat and reasons."""
    snapshot = aliased(AccountSnapshot)
    committee = {p.account_id for p in people if p.role in BUYING_COMMITTEE}
    rose = or_(
        and_(snapshot.id.is_not(None), Account.score >= snapshot.score + MIN_RISE),
        # New since yesterday's snapshot: its whole score is new.
        and_(snapshot.id.is_(None), Account.created_at >= window.since, Account.score >= MIN_RISE),
    )
    rows = session.execute(
        select(Account, snapshot.score)
        .outerjoin(
            snapshot,
            and_(
                snapshot.account_id == Account.id,
                snapshot.workspace_id == scope.workspace_id,
                snapshot.day == window.yesterday,
            ),
        )
        .where(
            scope.accounts(),
            or_(
                and_(Account.mqa.is_(True), Account.mqa_since >= window.since),
                Account.surging.is_(True),
                rose,
                Account.id.in_(committee),
            ),
        )
    ).all()
    hot = {}
    for account, yesterday_score in rows:
        row = _hot_row(account)
        if account.mqa and account.mqa_since is not None and account.mqa_since >= window.since:
            row.reasons.append(Reason("mqa"))
            row.heat += HEAT_MQA
        if account.surging:
            ratio = None if account.surge_ratio is None else round(account.surge_ratio, 1)
            row.reasons.append(Reason("surge", ratio=ratio))
            row.heat += HEAT_SURGE * max(ratio or 1.0, 1.0)
        for person in people:
            if person.account_id == account.id and person.role in BUYING_COMMITTEE:
                row.reasons.append(
                    Reason("committee", name=person.name, title=person.title, role=person.role)
                )
                row.heat += HEAT_COMMITTEE
        baseline = yesterday_score if yesterday_score is not None else 0.0
        delta = round(account.score - baseline)
        if delta >= MIN_RISE and (
            yesterday_score is not None or account.created_at >= window.since
        ):
            row.reasons.append(Reason("score", delta=delta))
            row.heat += delta
        if row.reasons:
            hot[account.id] = row
    return hot


def hot_accounts(
    session: Session, scope: Scope, candidates: dict[int, HotAccount], limit: int = HOT_SHOWN
) -> list[HotAccount]:
    """The scope's accounts by heat; when few are hot, the rest of the list is the highest
    scores (with no reason), so a salesperson always sees their accounts."""
    ranked = sorted(candidates.values(), key=lambda row: (-row.heat, -row.score, row.id))[:limit]
    if len(ranked) < limit:
        quiet = session.scalars(
            select(Account)
            .where(scope.accounts(), Account.id.not_in(list(candidates)))
            .order_by(Account.score.desc(), Account.id)
            .limit(limit - len(ranked))
        ).all()
        ranked += [_hot_row(account) for account in quiet]
    return ranked


def changes(
    session: Session,
    scope: Scope,
    window: Window,
    candidates: dict[int, HotAccount],
    people: list[NewPerson],
    limit: int = CHANGES_SHOWN,
) -> list[Change]:
    """MQA entries, stage moves, new people and owner moves on the scope's accounts in the
    last 24 hours, newest first."""
    found: list[Change] = []
    for row in candidates.values():
        if any(reason.kind == "mqa" for reason in row.reasons):
            found.append(Change("mqa", row.mqa_since, row.id, row.name))
    for move, name in session.execute(
        select(StageChange, Account.name)
        .join(Account, Account.id == StageChange.subject_id)
        .where(
            StageChange.workspace_id == scope.workspace_id,
            StageChange.subject == "account",
            StageChange.changed_at >= window.since,
            scope.accounts(),
        )
        .order_by(StageChange.changed_at.desc())
        .limit(limit)
    ):
        found.append(
            Change(
                "stage",
                move.changed_at,
                move.subject_id,
                name,
                text=move.reason,
                from_stage=move.from_stage,
                to_stage=move.to_stage,
            )
        )
    for event, name in session.execute(
        select(AccountEvent, Account.name)
        .join(Account, Account.id == AccountEvent.account_id)
        .where(
            AccountEvent.workspace_id == scope.workspace_id,
            AccountEvent.kind.in_(OWNER_EVENTS),
            AccountEvent.created_at >= window.since,
            scope.accounts(),
        )
        .order_by(AccountEvent.created_at.desc())
        .limit(limit)
    ):
        found.append(Change(event.kind, event.created_at, event.account_id, name, event.text))
    for person in people:
        found.append(
            Change(
                "person",
                person.first_seen_at,
                person.account_id,
                person.account,
                text=person.title,
                contact_id=person.contact_id,
                contact=person.name,
                role=person.role,
            )
        )
    found.sort(key=lambda change: change.at, reverse=True)
    return found[:limit]


def tasks_due(
    session: Session, scope: Scope, window: Window, limit: int = TASKS_SHOWN
) -> list[DueTask]:
    """The scope's open tasks due by the end of today, the most overdue first."""
    conditions = [
        Task.workspace_id == scope.workspace_id,
        Task.status == TaskStatus.OPEN,
        Task.due_at < window.today_end,
    ]
    if scope.user_id is not None:
        conditions.append(Task.assignee_id == scope.user_id)
    rows = session.execute(
        select(Task, Account.name, Contact.name)
        .outerjoin(
            Account,
            and_(Account.id == Task.account_id, Account.workspace_id == scope.workspace_id),
        )
        .outerjoin(
            Contact,
            and_(Contact.id == Task.contact_id, Contact.workspace_id == scope.workspace_id),
        )
        .where(*conditions)
        .order_by(Task.due_at, Task.id)
        .limit(limit)
    ).all()
    return [
        DueTask(task, account, contact, task.due_at < window.now) for task, account, contact in rows
    ]


def readers_today(
    session: Session, scope: Scope, window: Window, limit: int = READERS_SHOWN
) -> list[Reader]:
    """The scope's people who opened or read content today: what, and for how many minutes;
    the longest readers first."""
    # Its own alias: the ownership clause correlates on Account.
    account = aliased(Account)
    rows = session.execute(
        select(
            Interaction.contact_id,
            Contact.name,
            account.id,
            account.name,
            Interaction.properties,
            Interaction.engagement_minutes,
            Interaction.occurred_at,
        )
        .join(Contact, Contact.id == Interaction.contact_id)
        .outerjoin(
            account,
            and_(account.id == Contact.account_id, account.workspace_id == scope.workspace_id),
        )
        .where(
            Interaction.workspace_id == scope.workspace_id,
            Interaction.kind.in_(READING_KINDS),
            Interaction.occurred_at >= window.today_start,
            scope.contacts(),
        )
        .order_by(Interaction.occurred_at.desc())
        .limit(READING_ROWS)
    ).all()
    readers: dict[int, Reader] = {}
    for contact_id, name, account_id, account, properties, minutes, at in rows:
        reader = readers.get(contact_id)
        if reader is None:
            reader = readers[contact_id] = Reader(
                contact_id, name, account_id, account, [], 0.0, at
            )
        title = (properties or {}).get("title")
        if title and title not in reader.titles:
            reader.titles.append(str(title))
        reader.minutes += minutes or 0.0
    ranked = sorted(readers.values(), key=lambda r: (-r.minutes, -r.last_at.timestamp()))
    for reader in ranked:
        reader.minutes = round(reader.minutes, 1)
    return ranked[:limit]


def _hot_row(account: Account) -> HotAccount:
    return HotAccount(
        id=account.id,
        name=account.name,
        score=account.score,
        scaled_score=account.scaled_score or 0.0,
        tier=account.tier,
        stage=account.stage,
        mqa=account.mqa,
        mqa_since=account.mqa_since,
        owner_id=account.owner_id,
    )
