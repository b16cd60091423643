"""The content library's numbers, as its pages show them: per content item and form,
views, readers, likes, shares and submissions over a window of days, by day, by tracked
link and by medium, the accounts reached, and the latest views and submissions.

Every statistic is one SQL statement (GROUP BY), never a query per row. A reader is
the contact a view names, or the one that contact was merged into, so a person whose
identities were joined later counts once.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Select, and_, case, distinct, func, select
from sqlalchemy.orm import Session, aliased

from models import (
    Account,
    Channel,
    Contact,
    Content,
    FollowUpStatus,
    Form,
    FormSubmission,
    PageView,
    Staff,
    TrackedLink,
)
from outreach.qr_codes import day_start, local_days

WINDOWS = (7, 30, 90)  # days the pages count over
DEFAULT_WINDOW = 30


def window_days(value: int | None) -> int:
    return value if value in WINDOWS else DEFAULT_WINDOW


def window_start(zone: str, days: int, now: datetime | None = None) -> datetime:
    """The first midnight of the last `days` calendar days (today included) in the zone."""
    return day_start(local_days(zone, days, now)[0], zone)


def recorded_and_kept():
    """(recorded, kept): a contact as a row names it, and the one it lives on in (itself,
    or the contact it was merged into), to outer-join in that order."""
    return aliased(Contact), aliased(Contact)


def kept_of(recorded, kept):
    return kept.id == func.coalesce(recorded.merged_into_id, recorded.id)


def _count_if(condition):
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


@dataclass(frozen=True)
class ViewTotals:
    views: int = 0
    readers: int = 0  # distinct people known
    accounts: int = 0  # distinct accounts of those people
    read_seconds: int = 0
    likes: int = 0
    shares: int = 0
    anonymous: int = 0  # views by no one known (opened outside WeChat, or not yet drained)
    new_leads: int = 0  # views that made their reader known

    @property
    def read_minutes(self) -> float:
        return round(self.read_seconds / 60, 1)


def _view_totals(kept) -> tuple:
    """The ViewTotals columns over joined page views (outer-joined: a NULL view counts 0)."""
    return (
        func.count(PageView.id),
        func.count(distinct(kept.id)),
        func.count(distinct(kept.account_id)),
        func.coalesce(func.sum(PageView.active_seconds), 0),
        _count_if(PageView.liked.is_(True)),
        func.coalesce(func.sum(PageView.shares), 0),
        _count_if(and_(PageView.id.is_not(None), PageView.contact_id.is_(None))),
        _count_if(PageView.new_lead.is_(True)),
    )


def _content_with_totals(workspace_id: int, since: datetime) -> Select:
    recorded, kept = recorded_and_kept()
    return (
        select(Content, *_view_totals(kept))
        .outerjoin(
            PageView,
            and_(
                PageView.content_id == Content.id,
                PageView.workspace_id == workspace_id,
                PageView.started_at >= since,
            ),
        )
        .outerjoin(recorded, recorded.id == PageView.contact_id)
        .outerjoin(kept, kept_of(recorded, kept))
        .group_by(Content.id)
    )


@dataclass(frozen=True)
class ContentPage:
    items: list[tuple[Content, ViewTotals]]
    total: int
    page: int
    pages: int


def content_page(
    session: Session,
    workspace_id: int,
    since: datetime,
    *,
    page: int = 1,
    page_size: int = 50,
    archived: bool = False,
    search: str = "",
) -> ContentPage:
    """A page of the library, newest first, each item with its totals since `since`: the
    page's items are picked first, then their views counted, in one statement."""
    shown = [
        Content.workspace_id == workspace_id,
        Content.archived_at.is_not(None) if archived else Content.archived_at.is_(None),
    ]
    if search:
        shown.append(Content.title.icontains(search, autoescape=True))
    total = session.scalar(select(func.count()).select_from(Content).where(*shown))
    pages = max(1, -(-total // page_size))
    page = min(max(page, 1), pages)
    newest = (Content.created_at.desc(), Content.id.desc())
    picked = (
        select(Content.id)
        .where(*shown)
        .order_by(*newest)
        .limit(page_size)
        .offset((page - 1) * page_size)
        .subquery()
    )
    rows = session.execute(
        _content_with_totals(workspace_id, since)
        .join(picked, picked.c.id == Content.id)
        .order_by(*newest)
    )
    items = [(content, ViewTotals(*totals)) for content, *totals in rows]
    return ContentPage(items, total, page, pages)


def content_totals(
    session: Session, workspace_id: int, content_id: int, since: datetime
) -> ViewTotals:
    row = session.execute(
        _content_with_totals(workspace_id, since).where(Content.id == content_id)
    ).first()
    return ViewTotals(*row[1:]) if row else ViewTotals()


def _target(content_id: int | None, form_id: int | None):
    if (content_id is None) == (form_id is None):
        raise ValueError("statistics of a content item or a form")
    return (
        PageView.content_id == content_id if content_id is not None else PageView.form_id == form_id
    )


@dataclass(frozen=True)
class DayViews:
    day: date
    views: int = 0
    readers: int = 0


def daily_views(
    session: Session,
    workspace_id: int,
    zone: str,
    days: list[date],
    *,
    content_id: int | None = None,
    form_id: int | None = None,
) -> list[DayViews]:
    """Views and distinct readers on each of `days` (consecutive calendar days in the
    zone): one statement, each day bounded by its own midnights (exact in any zone)."""
    starts = [day_start(day, zone) for day in days]
    end = day_start(days[-1] + timedelta(days=1), zone)
    day_index = case(
        *[(PageView.started_at >= start, n) for n, start in reversed(list(enumerate(starts)))]
    )
    recorded, kept = recorded_and_kept()
    rows = (
        select(day_index.label("day"), PageView.id.label("view_id"), kept.id.label("reader"))
        .select_from(PageView)
        .outerjoin(recorded, recorded.id == PageView.contact_id)
        .outerjoin(kept, kept_of(recorded, kept))
        .where(
            _target(content_id, form_id),
            PageView.workspace_id == workspace_id,
            PageView.started_at >= starts[0],
            PageView.started_at < end,
        )
        .subquery()
    )
    found = {
        index: (views, readers)
        for index, views, readers in session.execute(
            select(
                rows.c.day, func.count(rows.c.view_id), func.count(distinct(rows.c.reader))
            ).group_by(rows.c.day)
        )
    }
    return [DayViews(day, *found.get(n, (0, 0))) for n, day in enumerate(days)]


@dataclass(frozen=True)
class LinkStats:
    link: TrackedLink
    channel_name: str | None
    views: int  # ever
    recent_views: int  # since the window's start
    recent_readers: int


def link_stats(
    session: Session,
    workspace_id: int,
    since: datetime,
    *,
    content_id: int | None = None,
    form_id: int | None = None,
    archived: bool = False,
) -> list[LinkStats]:
    """The tracked links to a content item or a form, newest first, with their views."""
    recorded, kept = recorded_and_kept()
    recent = PageView.started_at >= since
    link_target = (
        TrackedLink.content_id == content_id
        if content_id is not None
        else TrackedLink.form_id == form_id
    )
    rows = session.execute(
        select(
            TrackedLink,
            Channel.name,
            func.count(PageView.id),
            _count_if(recent),
            func.count(distinct(case((recent, kept.id)))),
        )
        .outerjoin(Channel, Channel.id == TrackedLink.channel_id)
        # The target's condition again, so the view index by content / form serves the join.
        .outerjoin(PageView, and_(PageView.link_id == TrackedLink.id, _target(content_id, form_id)))
        .outerjoin(recorded, recorded.id == PageView.contact_id)
        .outerjoin(kept, kept_of(recorded, kept))
        .where(
            TrackedLink.workspace_id == workspace_id,
            link_target,
            TrackedLink.archived_at.is_not(None) if archived else TrackedLink.archived_at.is_(None),
        )
        .group_by(TrackedLink.id, Channel.id)
        .order_by(TrackedLink.created_at.desc(), TrackedLink.id.desc())
    )
    return [LinkStats(*row) for row in rows]


def medium_stats(
    session: Session,
    workspace_id: int,
    since: datetime,
    *,
    content_id: int | None = None,
    form_id: int | None = None,
) -> list[tuple[str, int, int]]:
    """(medium, views, readers) since `since`, most viewed first."""
    recorded, kept = recorded_and_kept()
    views = func.count(PageView.id)
    rows = session.execute(
        select(TrackedLink.medium, views, func.count(distinct(kept.id)))
        .select_from(PageView)
        .join(TrackedLink, TrackedLink.id == PageView.link_id)
        .outerjoin(recorded, recorded.id == PageView.contact_id)
        .outerjoin(kept, kept_of(recorded, kept))
        .where(
            _target(content_id, form_id),
            PageView.workspace_id == workspace_id,
            PageView.started_at >= since,
        )
        .group_by(TrackedLink.medium)
        .order_by(views.desc(), TrackedLink.medium)
    )
    return [tuple(row) for row in rows]


@dataclass(frozen=True)
class AccountReach:
    account_id: int
    name: str
    readers: int
    views: int


def top_accounts(
    session: Session,
    workspace_id: int,
    content_id: int,
    since: datetime,
    limit: int = 10,
) -> list[AccountReach]:
    """The accounts whose people read the content most (distinct readers, then views)."""
    recorded, kept = recorded_and_kept()
    readers, views = func.count(distinct(kept.id)), func.count(PageView.id)
    rows = session.execute(
        select(Account.id, Account.name, readers, views)
        .select_from(PageView)
        .join(recorded, recorded.id == PageView.contact_id)
        .join(kept, kept_of(recorded, kept))
        .join(Account, Account.id == kept.account_id)
        .where(
            PageView.content_id == content_id,
            PageView.workspace_id == workspace_id,
            PageView.started_at >= since,
        )
        .group_by(Account.id)
        .order_by(readers.desc(), views.desc(), Account.name)
        .limit(limit)
    )
    return [AccountReach(*row) for row in rows]


@dataclass(frozen=True)
class Person:
    """A contact as the pages show one: who, what they do, where."""

    id: int | None
    name: str | None
    title: str | None = None
    account_id: int | None = None
    account: str | None = None


@dataclass(frozen=True)
class Sharing:
    """Through whose share a view or a submission came: a staff member or a contact."""

    staff_name: str | None = None
    contact: Person | None = None

    def __bool__(self) -> bool:
        return bool(self.staff_name or self.contact)


@dataclass(frozen=True)
class RecentView:
    view: PageView
    reader: Person | None  # None: no one known (yet)
    shared_by: Sharing


def _person_columns(kept, account):
    return (kept.id, kept.name, kept.title, account.id, account.name)


def _person(values) -> Person | None:
    return Person(*values) if values[0] is not None else None


def _sharing(values) -> Sharing:
    staff_name, contact_id, contact_name = values
    return Sharing(staff_name, Person(contact_id, contact_name) if contact_id else None)


def _sharer_joins(query: Select, sharer_column_staff, sharer_column_contact):
    """The query with its row's sharer joined: (query, staff name, sharer person columns)."""
    recorded, kept = recorded_and_kept()
    query = (
        query.outerjoin(Staff, Staff.id == sharer_column_staff)
        .outerjoin(recorded, recorded.id == sharer_column_contact)
        .outerjoin(kept, kept_of(recorded, kept))
    )
    return query, Staff.name, (kept.id, kept.name)


def recent_views(
    session: Session, workspace_id: int, content_id: int, limit: int = 20
) -> list[RecentView]:
    """The latest views of a content item: by whom, for how long, through whose share."""
    recorded, kept = recorded_and_kept()
    account = aliased(Account)
    query = (
        select(PageView)
        .outerjoin(recorded, recorded.id == PageView.contact_id)
        .outerjoin(kept, kept_of(recorded, kept))
        .outerjoin(account, account.id == kept.account_id)
    )
    query, staff_name, sharer = _sharer_joins(
        query, PageView.sharer_staff_id, PageView.sharer_contact_id
    )
    rows = session.execute(
        query.add_columns(*_person_columns(kept, account), staff_name, *sharer)
        .where(PageView.content_id == content_id, PageView.workspace_id == workspace_id)
        .order_by(PageView.started_at.desc(), PageView.id.desc())
        .limit(limit)
    )
    return [RecentView(view, _person(rest[0:5]), _sharing(rest[5:8])) for view, *rest in rows]


@dataclass(frozen=True)
class FormTotals:
    views: int = 0  # since the window's start
    submissions: int = 0  # since the window's start
    all_submissions: int = 0
    followups_sent: int = 0
    followups_failed: int = 0
    followups_waiting: int = 0  # pending or sending

    @property
    def conversion(self) -> float | None:
        """Submissions per view in the window, in percent (None without views)."""
        return round(100 * self.submissions / self.views, 1) if self.views else None


def _forms_with_totals(workspace_id: int, since: datetime) -> Select:
    views = (
        select(PageView.form_id, func.count().label("views"))
        .where(
            PageView.workspace_id == workspace_id,
            PageView.form_id.is_not(None),
            PageView.started_at >= since,
        )
        .group_by(PageView.form_id)
        .subquery()
    )
    status = FormSubmission.followup_status
    submissions = (
        select(
            FormSubmission.form_id,
            _count_if(FormSubmission.submitted_at >= since).label("recent"),
            func.count().label("total"),
            _count_if(status == FollowUpStatus.SENT).label("sent"),
            _count_if(status == FollowUpStatus.FAILED).label("failed"),
            _count_if(status.in_([FollowUpStatus.PENDING, FollowUpStatus.SENDING])).label(
                "waiting"
            ),
        )
        .where(FormSubmission.workspace_id == workspace_id)
        .group_by(FormSubmission.form_id)
        .subquery()
    )
    return (
        select(
            Form,
            func.coalesce(views.c.views, 0),
            func.coalesce(submissions.c.recent, 0),
            func.coalesce(submissions.c.total, 0),
            func.coalesce(submissions.c.sent, 0),
            func.coalesce(submissions.c.failed, 0),
            func.coalesce(submissions.c.waiting, 0),
        )
        .outerjoin(views, views.c.form_id == Form.id)
        .outerjoin(submissions, submissions.c.form_id == Form.id)
        .where(Form.workspace_id == workspace_id)
    )


def forms_with_totals(
    session: Session, workspace_id: int, since: datetime, *, archived: bool = False
) -> list[tuple[Form, FormTotals]]:
    """The workspace's forms, newest first, with their views and submissions."""
    rows = session.execute(
        _forms_with_totals(workspace_id, since)
        .where(Form.archived_at.is_not(None) if archived else Form.archived_at.is_(None))
        .order_by(Form.created_at.desc(), Form.id.desc())
    )
    return [(row, FormTotals(*totals)) for row, *totals in rows]


def form_totals(session: Session, workspace_id: int, form_id: int, since: datetime) -> FormTotals:
    row = session.execute(_forms_with_totals(workspace_id, since).where(Form.id == form_id)).first()
    return FormTotals(*row[1:]) if row else FormTotals()


@dataclass(frozen=True)
class SubmissionRow:
    submission: FormSubmission
    contact: Person | None  # None until the drain names the person
    shared_by: Sharing


@dataclass(frozen=True)
class SubmissionPage:
    items: list[SubmissionRow]
    total: int
    page: int
    pages: int


def submissions_page(
    session: Session, workspace_id: int, form_id: int, *, page: int = 1, page_size: int = 50
) -> SubmissionPage:
    """A form's submissions, newest first, with the contact each made and its sharer."""
    shown = (FormSubmission.form_id == form_id, FormSubmission.workspace_id == workspace_id)
    total = session.scalar(select(func.count()).select_from(FormSubmission).where(*shown))
    pages = max(1, -(-total // page_size))
    page = min(max(page, 1), pages)
    recorded, kept = recorded_and_kept()
    account = aliased(Account)
    query = (
        select(FormSubmission)
        .outerjoin(recorded, recorded.id == FormSubmission.contact_id)
        .outerjoin(kept, kept_of(recorded, kept))
        .outerjoin(account, account.id == kept.account_id)
    )
    query, staff_name, sharer = _sharer_joins(
        query, FormSubmission.sharer_staff_id, FormSubmission.sharer_contact_id
    )
    rows = session.execute(
        query.add_columns(*_person_columns(kept, account), staff_name, *sharer)
        .where(*shown)
        .order_by(FormSubmission.submitted_at.desc(), FormSubmission.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    items = [
        SubmissionRow(submission, _person(rest[0:5]), _sharing(rest[5:8]))
        for submission, *rest in rows
    ]
    return SubmissionPage(items, total, page, pages)
