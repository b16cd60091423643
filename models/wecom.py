from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, JSONDoc, UTCDateTime, utcnow


class FollowRelation(Base):
    """A WeCom customer in one staff member's contacts (a customer may have several)."""

    __tablename__ = "follow_relations"
    __table_args__ = (
        UniqueConstraint("channel_id", "external_userid", "staff_userid"),
        Index("ix_follow_relations_contact", "contact_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    external_userid: Mapped[str] = mapped_column(String(128))
    staff_userid: Mapped[str] = mapped_column(String(64))
    state: Mapped[str | None] = mapped_column(String(30))  # the 联系我 attribution
    add_way: Mapped[int | None]
    remark: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(200))
    remark_corp_name: Mapped[str | None] = mapped_column(String(200))
    remark_mobiles: Mapped[list | None] = mapped_column(JSONDoc)
    # Corp tag ids the staff member set on the customer, as WeCom last told us.
    tag_ids: Mapped[list | None] = mapped_column(JSONDoc)
    added_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # "staff" (del_external_contact), "customer" (del_follow_user: a lost customer)
    removed_by: Mapped[str | None] = mapped_column(String(10))
    contact_way_id: Mapped[int | None] = mapped_column(ForeignKey("contact_ways.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Staff(Base):
    """A WeCom member with the customer-contact permission (a salesperson)."""

    __tablename__ = "staff"
    __table_args__ = (UniqueConstraint("channel_id", "userid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    userid: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str | None] = mapped_column(String(254))
    # The admin user this salesperson signs in as: their accounts are the user's.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    # Still has the customer-contact permission as of the last sync.
    active: Mapped[bool] = mapped_column(default=True)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Their own digest interval in minutes (None: the workspace's).
    digest_minutes: Mapped[int | None] = mapped_column(Integer)


class ContactWay(Base):
    """A 联系我 code: which staff it reaches, its attribution state, tags and welcome."""

    __tablename__ = "contact_ways"
    __table_args__ = (UniqueConstraint("channel_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    name: Mapped[str] = mapped_column(String(100))
    # WeCom's id for it (there is no list API: this row is the only record).
    config_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(30))
    staff_userids: Mapped[list] = mapped_column(JSONDoc, default=list)
    skip_verify: Mapped[bool] = mapped_column(default=True)
    qr_code: Mapped[str | None] = mapped_column(String(500))
    # Harpoon tag ids put on everyone who adds through it.
    tag_ids: Mapped[list] = mapped_column(JSONDoc, default=list)
    # "{name}", "{account}", "{last_read}" are filled from what Harpoon knows.
    welcome_text: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who of staff_userids WeCom may hand the next add to (sales.contact_way_rotation):
    # "all" (WeCom picks at random), "round_robin" (one member at a time, in turn) or
    # "by_load" (the members with the fewest new customers today).
    rotation: Mapped[str] = mapped_column(String(12), default="all", server_default="all")
    # Adds through this code per member per day (the workspace's calendar day); None: no cap.
    daily_cap: Mapped[int | None] = mapped_column(Integer)
    # Who receives the adds when no regular member may: all capped, off schedule, inactive.
    backup_userids: Mapped[list] = mapped_column(JSONDoc, default=list)
    # {"days": [0..6, Monday 0], "start": "09:00", "end": "18:00"}: the regular members'
    # hours; outside them only the backup staff receive adds. None: always.
    schedule: Mapped[dict | None] = mapped_column(JSONDoc)
    # [{"start": "09:00", "end": "12:00"}, ...], every day: adds are accepted without
    # verification inside, verified outside. None: skip_verify applies all day.
    auto_accept: Mapped[list | None] = mapped_column(JSONDoc)
    # What WeCom was last told (update_contact_way only when the wanted config differs).
    applied_userids: Mapped[list | None] = mapped_column(JSONDoc)
    applied_skip_verify: Mapped[bool | None]
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last failed update: shown on the code's page, retried with backoff.
    sync_error: Mapped[str | None] = mapped_column(String(500))
    sync_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sync_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the rotation cron next looks at the code: the next moment its wanted config can
    # change on its own (sales/contact_way_rotation.next_check); None: never (unmanaged).
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class WelcomeStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    MISSED = "missed"  # the 20-second window had passed
    REFUSED = "refused"  # WeCom said no (already chatted: 41051, or code invalid)
    SKIPPED = "skipped"  # no welcome configured for the channel


class WelcomeMessage(Base):
    """The one welcome an add's WelcomeCode allows: recorded before it is sent."""

    __tablename__ = "welcome_messages"
    __table_args__ = (Index("ix_welcome_messages_workspace_status", "workspace_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    contact_way_id: Mapped[int | None] = mapped_column(ForeignKey("contact_ways.id"))
    external_userid: Mapped[str] = mapped_column(String(128))
    staff_userid: Mapped[str] = mapped_column(String(64))
    welcome_code: Mapped[str] = mapped_column(String(128), unique=True)
    text: Mapped[str | None] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(10), default=WelcomeStatus.PENDING)
    error: Mapped[str | None] = mapped_column(String(500))
    # The add as WeCom stamped it, as Harpoon received it, and when the welcome went out.
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NotificationStatus(StrEnum):
    PENDING = "pending"
    HELD = "held"  # past the member's daily cap: waits for tomorrow's first digest
    SENT = "sent"
    FAILED = "failed"


class StaffNotification(Base):
    """A note for a salesperson, sent as a WeCom app message (bursts become one digest)."""

    __tablename__ = "staff_notifications"
    __table_args__ = (
        Index("ix_staff_notifications_due", "channel_id", "status", "staff_userid"),
        Index("ix_staff_notifications_sent", "channel_id", "staff_userid", "sent_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    staff_userid: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(String(1000))
    # What it is about: the digest groups its entries by account, under the account's name.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    # The entry as the digest shows it under the account ("MQA", "李总 读了《白皮书》").
    summary: Mapped[str | None] = mapped_column(String(300))
    # Keeps one event from notifying twice (e.g. "target-add:<relation id>").
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(10), default=NotificationStatus.PENDING)
    error: Mapped[str | None] = mapped_column(String(500))
    # The app message that carried it (several notifications share one digest).
    msgid: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GroupSend(Base):
    """A group message a salesperson sends to their customers (add_msg_template)."""

    __tablename__ = "group_sends"
    __table_args__ = (Index("ix_group_sends_workspace_created", "workspace_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    staff_userid: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(String(2000))
    external_userids: Mapped[list] = mapped_column(JSONDoc, default=list)
    material_ids: Mapped[list] = mapped_column(JSONDoc, default=list)  # attachments, in order
    msgid: Mapped[str | None] = mapped_column(String(128))
    fail_list: Mapped[list] = mapped_column(JSONDoc, default=list)
    # external_userid -> 0 not sent, 1 sent, 2 not a friend, 3 monthly limit (WeCom's codes)
    results: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    status: Mapped[str] = mapped_column(String(12), default="queued")
    error: Mapped[str | None] = mapped_column(String(500))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    results_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # "single": to external_userids; "group": to the sender's customer groups, chat_ids,
    # with results by chat_id.
    chat_type: Mapped[str] = mapped_column(String(8), default="single", server_default="single")
    chat_ids: Mapped[list] = mapped_column(JSONDoc, default=list, server_default="[]")
