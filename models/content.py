"""Content and touchpoints beyond callbacks: registered content, short tracked links, page
views (who opened what, through whose share, for how long), forms and their submissions,
and the API keys external systems post touchpoints with."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, EncryptedString, JSONDoc, UTCDateTime, utcnow


class ContentKind(StrEnum):
    ARTICLE = "article"  # an OA article or any page elsewhere
    PAGE = "page"  # a landing page Harpoon hosts (with the reading beacon)
    VIDEO = "video"
    DOWNLOAD = "download"  # a white paper, a case study: often what a form hands out
    LIVE = "live"  # a live stream's page
    EVENT = "event"  # an offline event or webinar page


class Content(Base):
    """A piece of content a marketer registered: where it lives and what it is about."""

    __tablename__ = "contents"
    __table_args__ = (Index("ix_contents_workspace_created", "workspace_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    kind: Mapped[str] = mapped_column(String(20), default=ContentKind.ARTICLE)
    title: Mapped[str] = mapped_column(String(200))
    # Where a tracked link sends the reader; None for a page Harpoon hosts (`body`).
    url: Mapped[str | None] = mapped_column(String(1024))
    summary: Mapped[str] = mapped_column(String(500), default="")
    # A hosted page's text: paragraphs separated by blank lines.
    body: Mapped[str | None] = mapped_column(Text)
    # Topic and product tags (names): copied into each view's properties, which score rules
    # and journeys match ("topics": "pricing").
    topics: Mapped[list] = mapped_column(JSONDoc, default=list)
    products: Mapped[list] = mapped_column(JSONDoc, default=list)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LinkMedium(StrEnum):
    """Where a tracked link is placed (the content library counts views per medium)."""

    MENU = "menu"
    PUSH = "push"
    ARTICLE = "article"
    QR = "qr"
    EMAIL = "email"
    FORM = "form"  # a form's follow-up hands it out
    CHAT = "chat"  # sent into a WeCom chat from the sidebar
    OTHER = "other"


class TrackedLink(Base):
    """A short link (/t/<code>) to a content item or a form, placed in one medium. Opening
    it inside WeChat learns the reader's openid on `channel_id` (silent OAuth)."""

    __tablename__ = "tracked_links"
    __table_args__ = (
        Index("ix_tracked_links_content", "content_id"),
        Index("ix_tracked_links_form", "form_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    code: Mapped[str] = mapped_column(String(16), unique=True)
    content_id: Mapped[int | None] = mapped_column(ForeignKey("contents.id"))
    form_id: Mapped[int | None] = mapped_column(ForeignKey("forms.id"))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    medium: Mapped[str] = mapped_column(String(20), default=LinkMedium.OTHER)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PageView(Base):
    """One opening of a tracked link: by whom (an openid, the contact once the drain knows
    it; nobody outside WeChat), through whose share, and for how long (the beacon)."""

    __tablename__ = "page_views"
    __table_args__ = (
        # The content library: a content item's views over time.
        Index("ix_page_views_content_started", "content_id", "started_at"),
        Index("ix_page_views_form_started", "form_id", "started_at"),
        # The advocacy leaderboard: views through each sharer's links.
        Index("ix_page_views_sharer_contact", "workspace_id", "sharer_contact_id"),
        Index("ix_page_views_sharer_staff", "workspace_id", "sharer_staff_id"),
        Index("ix_page_views_contact", "contact_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    link_id: Mapped[int] = mapped_column(ForeignKey("tracked_links.id"))
    content_id: Mapped[int | None] = mapped_column(ForeignKey("contents.id"))
    form_id: Mapped[int | None] = mapped_column(ForeignKey("forms.id"))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    openid: Mapped[str | None] = mapped_column(String(128))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    # The view made this person known to us (their first touch): a lead for the sharer.
    new_lead: Mapped[bool] = mapped_column(Boolean, default=False)
    # A verified share token: a staff member's, or a reader's (by openid, then contact).
    sharer_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    sharer_openid: Mapped[str | None] = mapped_column(String(128))
    sharer_contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Reading time the beacon reported (capped by the time since the view began), and how
    # much of it was already recorded as content.read minutes.
    active_seconds: Mapped[int] = mapped_column(Integer, default=0)
    recorded_seconds: Mapped[int] = mapped_column(Integer, default=0)
    last_beacon_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    liked: Mapped[bool] = mapped_column(Boolean, default=False)
    shares: Mapped[int] = mapped_column(Integer, default=0)


class FormField(StrEnum):
    NAME = "name"
    COMPANY = "company"
    TITLE = "title"
    PHONE = "phone"
    EMAIL = "email"


class Form(Base):
    """A form Harpoon hosts. `fields`: {field: "required" | "optional"} for the fields it
    asks; `follow_up`: {"wechat": bool, "email": bool, "message": str} sent after a
    submission, with a tracked link (medium "form") to the download content."""

    __tablename__ = "forms"
    __table_args__ = (Index("ix_forms_workspace_created", "workspace_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    title: Mapped[str] = mapped_column(String(200))
    intro: Mapped[str] = mapped_column(Text, default="")
    fields: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    # Shown beside a required checkbox; empty: the form asks no consent.
    consent_text: Mapped[str] = mapped_column(String(500), default="")
    thank_you: Mapped[str] = mapped_column(String(500), default="")
    # Tag ids given to whoever submits (an interest, an event's registrants).
    tag_ids: Mapped[list] = mapped_column(JSONDoc, default=list)
    download_content_id: Mapped[int | None] = mapped_column(ForeignKey("contents.id"))
    follow_up: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FollowUpStatus(StrEnum):
    NONE = "none"  # the form sends no follow-up
    PENDING = "pending"
    SENDING = "sending"  # committed before the call: a crash here is not sent twice
    SENT = "sent"
    FAILED = "failed"  # `followup_error` says why (no window and no email, refused)


class FormSubmission(Base):
    """One submission, stored before anything else happens to it."""

    __tablename__ = "form_submissions"
    __table_args__ = (
        # The form token's nonce: a page posted twice is one submission.
        UniqueConstraint("form_id", "nonce"),
        Index("ix_form_submissions_form_submitted", "form_id", "submitted_at"),
        Index("ix_form_submissions_followup", "workspace_id", "followup_status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    form_id: Mapped[int] = mapped_column(ForeignKey("forms.id"))
    nonce: Mapped[str] = mapped_column(String(32))
    page_view_id: Mapped[int | None] = mapped_column(ForeignKey("page_views.id"))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    openid: Mapped[str | None] = mapped_column(String(128))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), index=True)
    data: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    consent: Mapped[bool] = mapped_column(Boolean, default=False)
    sharer_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    sharer_openid: Mapped[str | None] = mapped_column(String(128))
    sharer_contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    followup_status: Mapped[str] = mapped_column(String(10), default=FollowUpStatus.NONE)
    followup_channel: Mapped[str | None] = mapped_column(String(10))  # "wechat" or "email"
    followup_error: Mapped[str | None] = mapped_column(Text)
    followup_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(Base):
    """A workspace's key for the touchpoint API. Only its SHA-256 is stored; the signing
    secret (HMAC of request bodies) is kept encrypted, since Harpoon must compute it too."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The key's first characters, to tell keys apart in the list.
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    signing_secret: Mapped[str] = mapped_column(EncryptedString(512))
    require_signature: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
