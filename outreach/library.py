"""The content library as marketers keep it: content items, forms and their tracked links,
checked by marshmallow schemas, and the numbers the admin pages show.

Each `load_*` takes what a form posts (nested, see core.forms.unflatten) and returns
the row's values, or raises a ValidationError keyed like the form's inputs (messages
marked N_; the admin page translates them). What a schema cannot know (the workspace's
tags, contents, channels) the caller passes in: the schemas never query.

Every statistic is one SQL statement (GROUP BY), never a query per row. A reader is
the contact a view names, or the one that contact was merged into, so a person whose
identities were joined later counts once.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit

from marshmallow import ValidationError, fields, post_load, validate, validates_schema
from sqlalchemy import Select, and_, case, distinct, func, null, select, union_all
from sqlalchemy.orm import Session, aliased

from core import forms as form
from core.references import CONTENT, TAG, Reference, check_references, declare
from core.text import N_
from models import (
    Account,
    Channel,
    ChannelKind,
    Contact,
    Content,
    ContentKind,
    FollowUpStatus,
    Form,
    FormField,
    FormSubmission,
    LinkMedium,
    PageView,
    Staff,
    TrackedLink,
    utcnow,
)
from outreach.qr_codes import day_start, local_days
from outreach.segments import Picked

WINDOWS = (7, 30, 90)  # days the pages count over
DEFAULT_WINDOW = 30
MAX_TITLE = 200
MAX_URL = 1024
MAX_SUMMARY = 500
MAX_BODY = 20_000
MAX_NAMES = 20
MAX_NAME = 30
MAX_INTRO = 2000
MAX_FORM_TEXT = 500  # consent and thank-you texts
MAX_FOLLOW_UP = 600
MAX_LABEL = 100
REQUIREMENTS = ("optional", "required")
# Fields that name a person outside WeChat: a form asks at least one of them.
IDENTIFYING_FIELDS = (FormField.PHONE, FormField.EMAIL)

REQUIRED = N_("Required.")
NAMES_SEPARATED = N_("Names separated by commas, 、 or spaces.")
NOT_A_LINK = N_("A web address starting with http:// or https://.")
URL_OR_BODY = N_("Either a link to the content or a page body for Harpoon to host.")
NOT_BOTH = N_("A link or a page body, not both: a hosted page has no link elsewhere.")
NOT_WORKSPACE_TAGS = N_("Not tags of this workspace.")
NOT_WORKSPACE_CONTENT = N_("Choose content of the library (archived content is not handed out).")
FORM_REFERENCES = declare(
    "form",
    Reference("tag_ids", TAG, NOT_WORKSPACE_TAGS),
    Reference("download_content_id", CONTENT, NOT_WORKSPACE_CONTENT),
)


# ---- input ------------------------------------------------------------------------------


class Names(fields.Field):
    """Topic or product names typed in one input: separated by commas, 、 or spaces; each
    kept once, in the order typed."""

    def _deserialize(self, value, attr, data, **kwargs):
        parts = re.split(r"[,，、;；\s]+", value) if isinstance(value, str) else value
        if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
            raise ValidationError(NAMES_SEPARATED)
        names = list(dict.fromkeys(p.strip() for p in parts if p.strip()))
        if len(names) > MAX_NAMES:
            raise ValidationError(N_("At most 20 names."))
        if any(len(name) > MAX_NAME for name in names):
            raise ValidationError(N_("Each name at most 30 characters."))
        return names


def _web_address(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", value):
        raise ValidationError(NOT_A_LINK)


def _at_most(high: int, error: str, **kwargs) -> fields.String:
    return fields.String(
        validate=validate.Length(max=high, error=error),
        error_messages={"required": REQUIRED, "null": REQUIRED},
        **kwargs,
    )


class ContentSchema(form.FormSchema):
    """A content item: where it lives (`url`) or the page Harpoon hosts (`body`), exactly
    one of the two; what it is about (topics, products) goes into every view it gets."""

    kind = form.choice(
        [kind.value for kind in ContentKind], N_("Not a kind of content."), load_default="article"
    )
    title = form.text(N_("1 to 200 characters."), high=MAX_TITLE, required=True)
    url = fields.String(
        load_default=None,
        validate=[validate.Length(max=MAX_URL, error=N_("At most 1024 characters.")), _web_address],
    )
    body = _at_most(MAX_BODY, N_("At most 20000 characters."), load_default=None)
    summary = _at_most(MAX_SUMMARY, N_("At most 500 characters."), load_default="")
    topics = Names(load_default=list)
    products = Names(load_default=list)

    @validates_schema(skip_on_field_errors=False)
    def _url_or_body(self, data, **_kwargs):
        if "url" not in data or "body" not in data:
            return  # the mistake in the one given shows already
        if data["url"] and data["body"]:
            raise ValidationError(NOT_BOTH, "body")
        if not data["url"] and not data["body"]:
            raise ValidationError(URL_OR_BODY, "url")


def load_content(data: Mapping) -> dict:
    """The values of a content item from its form, or a ValidationError by input."""
    values = ContentSchema().load(data)
    if values["body"] is not None:
        values["body"] = values["body"].replace("\r\n", "\n")
    return values


def content_form(content: Content | None = None) -> dict:
    """A content item as its form shows it (an empty form for a new one)."""
    if content is None:
        return {"kind": ContentKind.ARTICLE.value}
    return {
        "kind": content.kind,
        "title": content.title,
        "url": content.url or "",
        "body": content.body or "",
        "summary": content.summary or "",
        "topics": "、".join(content.topics or []),
        "products": "、".join(content.products or []),
    }


CONTENT_FIELDS = ("kind", "title", "url", "body", "summary", "topics", "products")


def save_content(
    session: Session,
    workspace_id: int,
    values: dict,
    *,
    user_id: int | None = None,
    content: Content | None = None,
) -> Content:
    """A new content item, or `content` changed (flushed, not committed)."""
    if content is None:
        content = Content(workspace_id=workspace_id, created_by=user_id)
        session.add(content)
    for name in CONTENT_FIELDS:
        setattr(content, name, values[name])
    session.flush()
    return content


def set_archived(session: Session, row: Content | Form | TrackedLink, archived: bool) -> bool:
    """Archive (hidden from lists; its links stop working) or restore; False when it was so."""
    if (row.archived_at is not None) == archived:
        return False
    row.archived_at = utcnow() if archived else None
    session.flush()
    return True


@dataclass(frozen=True)
class FormChoices:
    """What a workspace's forms may name, read by the caller."""

    tag_ids: frozenset[int] = frozenset()
    content_ids: frozenset[int] = frozenset()


def _asked() -> fields.String:
    return form.choice(REQUIREMENTS, N_("Not asked, optional or required."), load_default=None)


class AskedSchema(form.FormSchema):
    """Which fields a form asks: each optional or required; not given, not asked."""

    error_messages = {"type": N_("Not a choice of fields.")}

    name = _asked()
    company = _asked()
    title = _asked()
    phone = _asked()
    email = _asked()


class FollowUpSchema(form.FormSchema):
    """What is sent after a submission: on WeChat (inside the service window) and/or by
    email, a message with a link to the form's download content."""

    error_messages = {"type": N_("Not a follow-up.")}

    wechat = fields.Boolean(load_default=False, error_messages={"invalid": N_("Yes or no.")})
    email = fields.Boolean(load_default=False, error_messages={"invalid": N_("Yes or no.")})
    message = _at_most(MAX_FOLLOW_UP, N_("At most 600 characters."), load_default="")


class FormDefinitionSchema(form.FormSchema):
    title = form.text(N_("1 to 200 characters."), high=MAX_TITLE, required=True)
    intro = _at_most(MAX_INTRO, N_("At most 2000 characters."), load_default="")
    # Posted as "fields" (the Form's column); `Schema.fields` is marshmallow's own.
    asked = fields.Nested(AskedSchema, data_key="fields", load_default=dict)
    consent_text = _at_most(MAX_FORM_TEXT, N_("At most 500 characters."), load_default="")
    thank_you = _at_most(MAX_FORM_TEXT, N_("At most 500 characters."), load_default="")
    tag_ids = Picked(whole=True)
    download_content_id = form.count(NOT_WORKSPACE_CONTENT, low=1, optional=True)
    follow_up = fields.Nested(FollowUpSchema, load_default=dict)

    def __init__(self, choices: FormChoices):
        super().__init__()
        self.choices = choices

    @validates_schema(skip_on_field_errors=False)
    def _complete(self, data, **_kwargs):
        errors: dict = {}
        asked = {name for name, need in (data.get("asked") or {}).items() if need}
        if "asked" in data and not asked & set(IDENTIFYING_FIELDS):
            errors["fields"] = [
                N_(
                    "Ask for a phone number or an email (or both): outside WeChat they are "
                    "how a submission names a person."
                )
            ]
        if any(tag_id not in self.choices.tag_ids for tag_id in data.get("tag_ids", ())):
            errors["tag_ids"] = [NOT_WORKSPACE_TAGS]
        download = data.get("download_content_id")
        if download is not None and download not in self.choices.content_ids:
            errors["download_content_id"] = [NOT_WORKSPACE_CONTENT]
        follow_up = data.get("follow_up") or {}
        if (follow_up.get("wechat") or follow_up.get("email")) and download is None:
            errors.setdefault("download_content_id", []).append(
                N_("The follow-up hands out this content: choose it, or turn the follow-up off.")
            )
        if follow_up.get("email") and "asked" in data and FormField.EMAIL not in asked:
            errors["follow_up"] = {
                "email": [N_("An email follow-up needs the form to ask for an email address.")]
            }
        if errors:
            raise ValidationError(errors)

    @post_load
    def _tidy(self, data, **_kwargs):
        # A nested input not posted at all is its default ({}), not loaded: hence .get.
        asked, follow_up = data.pop("asked"), data["follow_up"]
        data["fields"] = {field.value: asked[field] for field in FormField if asked.get(field)}
        data["follow_up"] = {
            "wechat": follow_up.get("wechat", False),
            "email": follow_up.get("email", False),
            "message": follow_up.get("message", ""),
        }
        return data


def load_form_definition(data: Mapping, choices: FormChoices) -> dict:
    """The values of a form from the admin's form, or a ValidationError by input."""
    return FormDefinitionSchema(choices).load(data)


FORM_FIELDS = (
    "title",
    "intro",
    "fields",
    "consent_text",
    "thank_you",
    "tag_ids",
    "download_content_id",
    "follow_up",
)
# A new form asks these; the marketer changes what differs.
NEW_FORM_FIELDS = {"name": "required", "company": "required", "phone": "required"}


def form_values(row: Form | None = None) -> dict:
    """A form as the admin's form shows it, by its dotted input names."""
    asked = dict(row.fields or {}) if row else NEW_FORM_FIELDS
    follow_up = dict(row.follow_up or {}) if row else {}
    return {
        "title": row.title if row else "",
        "intro": row.intro if row else "",
        **{f"fields.{name.value}": asked.get(name.value, "") for name in FormField},
        "consent_text": row.consent_text if row else "",
        "thank_you": row.thank_you if row else "",
        "tag_ids": [str(tag_id) for tag_id in (row.tag_ids if row else [])],
        "download_content_id": form.shown(row.download_content_id if row else None),
        "follow_up.wechat": "1" if follow_up.get("wechat") else "",
        "follow_up.email": "1" if follow_up.get("email") else "",
        "follow_up.message": follow_up.get("message", ""),
    }


def save_form(
    session: Session,
    workspace_id: int,
    values: dict,
    *,
    user_id: int | None = None,
    row: Form | None = None,
) -> Form:
    """A new form, or `row` changed (flushed, not committed); a ValidationError keyed by
    field when it names another workspace's tags or content."""
    check_references(session, workspace_id, values, FORM_REFERENCES)
    if row is None:
        row = Form(workspace_id=workspace_id, created_by=user_id)
        session.add(row)
    for name in FORM_FIELDS:
        setattr(row, name, values[name])
    session.flush()
    return row


def audited(row: Content | Form) -> dict:
    """What the audit log keeps of a content item or a form."""
    names = CONTENT_FIELDS if isinstance(row, Content) else FORM_FIELDS
    return {name: getattr(row, name) for name in names}


class LinkSchema(form.FormSchema):
    """A tracked link's placement; its target is the page it is created on."""

    medium = form.choice(
        [medium.value for medium in LinkMedium], N_("Not a place for a link."), required=True
    )
    label = _at_most(MAX_LABEL, N_("At most 100 characters."), load_default="")
    channel_id = form.count(N_("Not an Official Account of this workspace."), low=1, optional=True)

    def __init__(self, channel_ids: frozenset[int]):
        super().__init__()
        self.channel_ids = channel_ids

    @validates_schema
    def _known_channel(self, data, **_kwargs):
        channel_id = data.get("channel_id")
        if channel_id is not None and channel_id not in self.channel_ids:
            raise ValidationError(N_("Not an Official Account of this workspace."), "channel_id")


def load_link(data: Mapping, channel_ids: frozenset[int]) -> dict:
    return LinkSchema(channel_ids).load(data)


def oa_channels(session: Session, workspace_id: int) -> list[Channel]:
    """The workspace's Official Accounts, the default one (the first connected) first."""
    return list(
        session.scalars(
            select(Channel)
            .where(Channel.workspace_id == workspace_id, Channel.kind == ChannelKind.OA)
            .order_by(Channel.created_at, Channel.id)
        )
    )


def active_staff(session: Session, workspace_id: int) -> list[Staff]:
    """Staff members who may share (they still have the customer-contact permission)."""
    return list(
        session.scalars(
            select(Staff)
            .where(Staff.workspace_id == workspace_id, Staff.active.is_(True))
            .order_by(Staff.name, Staff.id)
        )
    )


# ---- statistics -------------------------------------------------------------------------


def window_days(value: int | None) -> int:
    return value if value in WINDOWS else DEFAULT_WINDOW


def window_start(zone: str, days: int, now: datetime | None = None) -> datetime:
    """The first midnight of the last `days` calendar days (today included) in the zone."""
    return day_start(local_days(zone, days, now)[0], zone)


def _people():
    """(recorded, kept): a contact as a row names it, and the one it lives on in (itself,
    or the contact it was merged into), to outer-join in that order."""
    return aliased(Contact), aliased(Contact)


def _kept_of(recorded, kept):
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
    recorded, kept = _people()
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
        .outerjoin(kept, _kept_of(recorded, kept))
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
    recorded, kept = _people()
    rows = (
        select(day_index.label("day"), PageView.id.label("view_id"), kept.id.label("reader"))
        .select_from(PageView)
        .outerjoin(recorded, recorded.id == PageView.contact_id)
        .outerjoin(kept, _kept_of(recorded, kept))
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
    recorded, kept = _people()
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
        .outerjoin(kept, _kept_of(recorded, kept))
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
    recorded, kept = _people()
    views = func.count(PageView.id)
    rows = session.execute(
        select(TrackedLink.medium, views, func.count(distinct(kept.id)))
        .select_from(PageView)
        .join(TrackedLink, TrackedLink.id == PageView.link_id)
        .outerjoin(recorded, recorded.id == PageView.contact_id)
        .outerjoin(kept, _kept_of(recorded, kept))
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
    recorded, kept = _people()
    readers, views = func.count(distinct(kept.id)), func.count(PageView.id)
    rows = session.execute(
        select(Account.id, Account.name, readers, views)
        .select_from(PageView)
        .join(recorded, recorded.id == PageView.contact_id)
        .join(kept, _kept_of(recorded, kept))
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
    recorded, kept = _people()
    query = (
        query.outerjoin(Staff, Staff.id == sharer_column_staff)
        .outerjoin(recorded, recorded.id == sharer_column_contact)
        .outerjoin(kept, _kept_of(recorded, kept))
    )
    return query, Staff.name, (kept.id, kept.name)


def recent_views(
    session: Session, workspace_id: int, content_id: int, limit: int = 20
) -> list[RecentView]:
    """The latest views of a content item: by whom, for how long, through whose share."""
    recorded, kept = _people()
    account = aliased(Account)
    query = (
        select(PageView)
        .outerjoin(recorded, recorded.id == PageView.contact_id)
        .outerjoin(kept, _kept_of(recorded, kept))
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
    recorded, kept = _people()
    account = aliased(Account)
    query = (
        select(FormSubmission)
        .outerjoin(recorded, recorded.id == FormSubmission.contact_id)
        .outerjoin(kept, _kept_of(recorded, kept))
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


# ---- advocacy -----------------------------------------------------------------------------


class SharerKind:
    STAFF = "staff"
    CONTACT = "contact"


@dataclass(frozen=True)
class Advocate:
    """One sharer's reach in the window: staff (staff_id) or a customer contact."""

    staff_id: int | None
    contact_id: int | None
    name: str | None
    title: str | None  # a contact's
    account: str | None
    views: int  # views through their shares
    readers: int  # distinct people who read through them
    leads: int  # distinct people who became known through their shares or submitted a form
    accounts: int  # distinct accounts of the people reached

    @property
    def kind(self) -> str:
        return SharerKind.STAFF if self.staff_id is not None else SharerKind.CONTACT


def _shared_rows(model, workspace_id: int, since: datetime, when, *, view: bool):
    """One row per view or submission through a share: its sharer (staff, else the kept
    contact), the person reached, their account, and whether it makes a lead."""
    recorded, kept = _people()
    sharer_recorded = aliased(Contact)
    by_staff = model.sharer_staff_id.is_not(None)
    lead = model.new_lead.is_(True) if view else model.id.is_not(None)
    return (
        select(
            model.sharer_staff_id.label("staff_id"),
            case(
                (
                    ~by_staff,
                    func.coalesce(sharer_recorded.merged_into_id, model.sharer_contact_id),
                )
            ).label("contact_id"),
            (model.id if view else null()).label("view_id"),
            kept.id.label("person_id"),
            kept.account_id.label("account_id"),
            case((lead, kept.id)).label("lead_id"),
        )
        .select_from(model)
        .outerjoin(sharer_recorded, sharer_recorded.id == model.sharer_contact_id)
        .outerjoin(recorded, recorded.id == model.contact_id)
        .outerjoin(kept, _kept_of(recorded, kept))
        .where(
            model.workspace_id == workspace_id,
            when >= since,
            (model.sharer_staff_id.is_not(None)) | (model.sharer_contact_id.is_not(None)),
        )
    )


def leaderboard(
    session: Session,
    workspace_id: int,
    since: datetime,
    *,
    kind: str | None = None,
    limit: int = 100,
) -> list[Advocate]:
    """Who brought readers and leads through their shares since `since`: staff and customer
    contacts in one ranking, most leads first, then most views. One statement."""
    shared = union_all(
        _shared_rows(PageView, workspace_id, since, PageView.started_at, view=True),
        _shared_rows(FormSubmission, workspace_id, since, FormSubmission.submitted_at, view=False),
    ).subquery()
    sharer = aliased(Contact)
    account = aliased(Account)
    views = func.count(shared.c.view_id)
    readers = func.count(distinct(case((shared.c.view_id.is_not(None), shared.c.person_id))))
    leads = func.count(distinct(shared.c.lead_id))
    query = (
        select(
            shared.c.staff_id,
            shared.c.contact_id,
            func.coalesce(Staff.name, sharer.name),
            sharer.title,
            account.name,
            views,
            readers,
            leads,
            func.count(distinct(shared.c.account_id)),
        )
        .outerjoin(Staff, Staff.id == shared.c.staff_id)
        .outerjoin(sharer, sharer.id == shared.c.contact_id)
        .outerjoin(account, account.id == sharer.account_id)
        .group_by(shared.c.staff_id, shared.c.contact_id, Staff.id, sharer.id, account.id)
        .order_by(leads.desc(), views.desc(), readers.desc())
        .limit(limit)
    )
    if kind == SharerKind.STAFF:
        query = query.where(shared.c.staff_id.is_not(None))
    elif kind == SharerKind.CONTACT:
        query = query.where(shared.c.staff_id.is_(None))
    return [Advocate(*row) for row in session.execute(query)]
