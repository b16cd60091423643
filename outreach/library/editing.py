"""The content library as marketers edit it: content items, forms and their tracked links,
checked by marshmallow schemas, saved, archived and restored.

Each `load_*` takes what a form posts (nested, see core.forms.unflatten) and returns the
row's values, or raises a ValidationError keyed like the form's inputs (messages marked
N_; the admin page translates them). What a schema cannot know (the workspace's tags,
contents, channels) the caller passes in: the schemas never query.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from marshmallow import ValidationError, fields, post_load, validate, validates_schema
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import forms as form
from core.references import CONTENT, TAG, Reference, check_references, declare
from core.text import N_
from models import (
    Channel,
    ChannelKind,
    Content,
    ContentKind,
    Form,
    FormField,
    LinkMedium,
    Staff,
    TrackedLink,
    utcnow,
)
from outreach.segments import Picked

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
