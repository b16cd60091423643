"""WeCom customer groups (客户群): the groups, who is in them, and the 群活码 that fill them."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, JSONDoc, UTCDateTime, utcnow


class CustomerGroup(Base):
    """One external group chat of a WeCom corp, as `groupchat/get` last described it."""

    __tablename__ = "customer_groups"
    __table_args__ = (
        UniqueConstraint("channel_id", "chat_id"),
        Index("ix_customer_groups_workspace_owner", "workspace_id", "owner_userid"),
        # The refresh job's pick: a corp's groups an event or the sync marked.
        Index("ix_customer_groups_refresh", "channel_id", "refresh_requested_at"),
        Index("ix_customer_groups_workspace_activity", "workspace_id", "activity_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    chat_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100), default="")
    owner_userid: Mapped[str] = mapped_column(String(64), default="")
    notice: Mapped[str] = mapped_column(String(1000), default="")
    # groupchat/list's status: 0 normal; 1-3 the owner left and a transfer is under way.
    status: Mapped[int] = mapped_column(Integer, default=0)
    # Current members: staff (type 1) and customers (type 2), kept by the sync and events.
    member_count: Mapped[int] = mapped_column(Integer, default=0)
    external_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # WeCom's create_time
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An event or the sync asked for groupchat/get (the drain makes no outbound call).
    refresh_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The QuitScene of del_member events since the last refresh (the event names nobody).
    pending_quit_scene: Mapped[int | None] = mapped_column(Integer)
    # The last join, leave or change seen.
    activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GroupMemberType:
    STAFF = 1
    EXTERNAL = 2


class CustomerGroupMember(Base):
    """A person in a group, now or before (`left_at`): customers resolved to contacts."""

    __tablename__ = "customer_group_members"
    __table_args__ = (
        UniqueConstraint("group_id", "userid"),
        Index("ix_customer_group_members_contact", "contact_id"),
        Index("ix_customer_group_members_workspace", "workspace_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    group_id: Mapped[int] = mapped_column(ForeignKey("customer_groups.id", ondelete="CASCADE"))
    # A staff member's userid, or a customer's external_userid.
    userid: Mapped[str] = mapped_column(String(128))
    member_type: Mapped[int] = mapped_column(Integer)  # GroupMemberType
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    unionid: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(100), default="")
    # 1 invited directly, 2 by link, 3 by QR code (WeCom's join_scene).
    join_scene: Mapped[int | None] = mapped_column(Integer)
    invitor: Mapped[str | None] = mapped_column(String(64))
    # The 群活码's state the person joined through (attribution), when WeCom gives it.
    state: Mapped[str | None] = mapped_column(String(30))
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    quit_scene: Mapped[int | None] = mapped_column(Integer)


class GroupJoinWay(Base):
    """A 群活码 (`groupchat/add_join_way`, scene 2): a QR code that admits into up to five
    groups, with a state for attribution; WeCom opens a new room when they fill up."""

    __tablename__ = "group_join_ways"
    __table_args__ = (
        UniqueConstraint("channel_id", "state"),
        Index("ix_group_join_ways_workspace", "workspace_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    name: Mapped[str] = mapped_column(String(100))
    config_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(30))
    # The groups' chat_ids, in order (WeCom admits into the first with room).
    chat_ids: Mapped[list] = mapped_column(JSONDoc, default=list)
    auto_create_room: Mapped[bool] = mapped_column(default=False)
    room_base_name: Mapped[str | None] = mapped_column(String(40))
    room_base_id: Mapped[int | None] = mapped_column(Integer)
    qr_code: Mapped[str | None] = mapped_column(String(500))
    # Harpoon tag ids put on everyone who joins through it.
    tag_ids: Mapped[list] = mapped_column(JSONDoc, default=list)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GroupTransferStatus:
    QUEUED = "queued"
    SENDING = "sending"  # the call may have gone out: never sent again
    DONE = "done"  # WeCom accepted the chat (its owner is now the takeover)
    FAILED = "failed"  # WeCom refused the chat (errcode and message kept)


class GroupTransferItem(Base):
    """One customer group moving with a transfer (`groupchat/onjob_transfer` in service,
    `groupchat/transfer` from a departed owner), with WeCom's answer for it."""

    __tablename__ = "group_transfer_items"
    __table_args__ = (
        UniqueConstraint("transfer_id", "group_id"),
        Index("ix_group_transfer_items_workspace_status", "workspace_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"))
    group_id: Mapped[int] = mapped_column(ForeignKey("customer_groups.id", ondelete="CASCADE"))
    chat_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default=GroupTransferStatus.QUEUED)
    errcode: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    # The idempotency key, recorded before the call went out.
    call_key: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GroupWelcomeTemplate(Base):
    """A group welcome (入群欢迎语) in the corp's template library
    (`group_welcome_template/add`): a group's owner picks it for their group in WeCom."""

    __tablename__ = "group_welcome_templates"
    __table_args__ = (
        UniqueConstraint("channel_id", "template_id"),
        Index("ix_group_welcome_templates_workspace", "workspace_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    template_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(100))
    # WeCom allows 3000 bytes: 1000 characters of Chinese fit.
    text: Mapped[str] = mapped_column(String(1000), default="")
    link_title: Mapped[str | None] = mapped_column(String(128))
    link_url: Mapped[str | None] = mapped_column(String(1000))
    link_desc: Mapped[str | None] = mapped_column(String(170))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
