"""Outreach: saved segments, OA menu versions, channel QR codes, and pushes with their
delivery plan (batches and recipients) and the per-follower monthly mass-send quota."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONDoc, UTCDateTime, utcnow


class SavedSegment(Base):
    """A saved filter (outreach.segments.Segment as a document), reused by pushes and
    journeys."""

    __tablename__ = "segments"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(300), default="")
    document: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    # The last count the admin took, shown in the list.
    last_count: Mapped[int | None] = mapped_column(Integer)
    counted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MenuStatus(StrEnum):
    DRAFT = "draft"  # being edited; one per channel
    PUBLISHED = "published"  # what followers see now (the newest published version)
    SUPERSEDED = "superseded"  # published once, replaced by a newer one
    FAILED = "failed"  # the platform refused it; `error` says why


class MenuVersion(Base):
    """One version of an OA's menus: the default menu and one conditional menu per
    synced tag. Document: {"default": [button...], "conditional": [{"tag_id": int,
    "buttons": [button...]}...]} in matching priority order (first wins)."""

    __tablename__ = "menu_versions"
    __table_args__ = (Index("ix_menu_versions_channel_created", "channel_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    document: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    status: Mapped[str] = mapped_column(String(12), default=MenuStatus.DRAFT)
    note: Mapped[str] = mapped_column(String(200), default="")
    error: Mapped[str | None] = mapped_column(String(500))
    # What publishing made: {"menus": {tag id (as text): the platform's menuid of its
    # conditional menu}, "rules": {click key: id of the MENU tag rule made for it}}
    remote_ids: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    # A rollback republishes an earlier version's document as a new version.
    restored_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("menu_versions.id", ondelete="SET NULL")
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class QrCode(Base):
    """A parametric OA QR code handed out on a channel (an event, a poster, a webinar):
    the tags a scan gives, the welcome it answers with, and its scans over time."""

    __tablename__ = "qr_codes"
    __table_args__ = (UniqueConstraint("channel_id", "scene"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    name: Mapped[str] = mapped_column(String(100))
    permanent: Mapped[bool] = mapped_column(Boolean, default=False)
    # The scene as the callback carries it: an integer's digits or the string scene.
    scene: Mapped[str] = mapped_column(String(64))
    scene_is_int: Mapped[bool] = mapped_column(Boolean, default=False)
    ticket: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(300), default="")
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    tag_ids: Mapped[list] = mapped_column(JSONDoc, default=list)
    welcome_reply: Mapped[str | None] = mapped_column(Text)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PushStatus(StrEnum):
    DRAFT = "draft"
    AWAITING_APPROVAL = "awaiting_approval"  # more recipients than the workspace allows unapproved
    SCHEDULED = "scheduled"  # approved (or small enough); waits for `scheduled_at`
    SENDING = "sending"  # planned and being dispatched (resumable)
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Mechanism(StrEnum):
    """How one follower is reached."""

    MASS_TAG = "mass_tag"  # message/mass/sendall to one synced tag
    MASS_OPENID = "mass_openid"  # message/mass/send to <= 10,000 openids
    CS = "cs"  # message/custom/send inside the follower's customer-service window
    TEMPLATE = "template"  # message/template/send
    EMAIL = "email"  # an email template to the person's email address (no OA)


MASS_MECHANISMS = frozenset({Mechanism.MASS_TAG, Mechanism.MASS_OPENID})


class Push(Base):
    """Content to a segment (or every follower) of one OA, at a time; or an email to a
    segment's members with an email address (no OA: `channel_id` is None)."""

    __tablename__ = "pushes"
    __table_args__ = (
        Index("ix_pushes_workspace_created", "workspace_id", "created_at"),
        Index("ix_pushes_status_scheduled", "status", "scheduled_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    name: Mapped[str] = mapped_column(String(100))
    # {"type": "text"|"news"|"image"|"template"|"email", ...} validated by outreach.pushes
    content: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    # None: every follower of the channel.
    segment_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="SET NULL"))
    # The segment as it was when the push was planned (the report explains that audience).
    audience: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(20), default=PushStatus.DRAFT)
    # Followers inside a customer-service window get a CS message (sparing their quota).
    prefer_service_window: Mapped[bool] = mapped_column(Boolean, default=False)
    # A follower over the monthly mass quota and outside any window gets this template
    # message ({"template_id", "data", "url"}), when set.
    fallback_template: Mapped[dict | None] = mapped_column(JSONDoc)
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    targeted: Mapped[int | None] = mapped_column(Integer)
    # The delivery report: {"planned": {mechanism: n}, "sent": {...}, "skipped": {reason: n},
    # "failed": {reason: n}, "delivered": n (from MASSSENDJOBFINISH / TEMPLATESENDJOBFINISH)}
    report: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    error: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A sending push whose heartbeat is old lost its worker: the sweeper resumes it.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BatchStatus(StrEnum):
    PLANNED = "planned"
    SUBMITTING = "submitting"  # recorded before the call: a resume resubmits (clientmsgid)
    SUBMITTED = "submitted"  # the platform took it; mass results arrive as MASSSENDJOBFINISH
    FINISHED = "finished"  # MASSSENDJOBFINISH (or every message of a CS/template batch) is in
    FAILED = "failed"


class PushBatch(Base):
    """One platform call (mass sends) or one run of single sends (CS, template)."""

    __tablename__ = "push_batches"
    __table_args__ = (
        UniqueConstraint("push_id", "number"),
        Index("ix_push_batches_msg_id", "msg_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    push_id: Mapped[int] = mapped_column(ForeignKey("pushes.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    mechanism: Mapped[str] = mapped_column(String(12))
    # Mass sends: the platform keeps it 24 h and answers a repeat with the first msg_id.
    clientmsgid: Mapped[str] = mapped_column(String(64))
    tag_remote_id: Mapped[int | None] = mapped_column(Integer)  # mass_tag: the OA tag id
    first_position: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(12), default=BatchStatus.PLANNED)
    msg_id: Mapped[int | None] = mapped_column(BigInteger)
    errcode: Mapped[int | None] = mapped_column(Integer)
    errmsg: Mapped[str | None] = mapped_column(String(300))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # MASSSENDJOBFINISH's counts
    total_count: Mapped[int | None] = mapped_column(Integer)
    filter_count: Mapped[int | None] = mapped_column(Integer)
    sent_count: Mapped[int | None] = mapped_column(Integer)
    error_count: Mapped[int | None] = mapped_column(Integer)


class RecipientStatus(StrEnum):
    PLANNED = "planned"
    SENDING = "sending"  # a single send recorded before its call
    SENT = "sent"
    DELIVERED = "delivered"  # TEMPLATESENDJOBFINISH success
    SKIPPED = "skipped"
    FAILED = "failed"


class PushRecipient(Base):
    """One follower of a push: the mechanism chosen for them, or why they were skipped."""

    __tablename__ = "push_recipients"
    __table_args__ = (
        Index("ix_push_recipients_position", "push_id", "mechanism", "position"),
        # Only template messages have one: a partial index skips the million NULLs.
        Index(
            "ix_push_recipients_msgid",
            "msgid",
            postgresql_where=text("msgid IS NOT NULL"),
            sqlite_where=text("msgid IS NOT NULL"),
        ),
    )

    push_id: Mapped[int] = mapped_column(
        ForeignKey("pushes.id", ondelete="CASCADE"), primary_key=True
    )
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), primary_key=True)
    openid: Mapped[str | None] = mapped_column(String(128))
    mechanism: Mapped[str | None] = mapped_column(String(12))
    # Rank among the push's recipients of the same mechanism, numbered by the planning
    # INSERT itself: a batch is a range of positions (no UPDATE of a million rows).
    position: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12), default=RecipientStatus.PLANNED)
    reason: Mapped[str | None] = mapped_column(String(40))
    msgid: Mapped[int | None] = mapped_column(BigInteger)  # a template message's
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MassQuota(Base):
    """Mass messages a follower received from one OA in a calendar month (Beijing time):
    at most 4 on a service account, so a fifth is routed elsewhere, not lost."""

    __tablename__ = "mass_quota"

    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # "2026-11"
    openid: Mapped[str] = mapped_column(String(128), primary_key=True)
    received: Mapped[int] = mapped_column(Integer, default=0)
