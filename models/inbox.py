from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, UTCDateTime, utcnow


class InboxStatus(StrEnum):
    PENDING = "pending"  # waiting for a drain
    DONE = "done"  # handled
    IGNORED = "ignored"  # stored, but no handler for its kind
    FAILED = "failed"  # a handler raised; retried at next_attempt_at
    DEAD = "dead"  # failed inbox_max_attempts times; retried only by hand


class InboundEvent(Base):
    """The durable inbox: every accepted callback, before any processing."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        UniqueConstraint("channel_id", "dedupe_key"),
        # Touchpoints that name no channel (the API's, a form's outside WeChat) dedupe per
        # workspace: NULLs never conflict in the constraint above.
        Index(
            "uq_inbound_events_workspace_dedupe_no_channel",
            "workspace_id",
            "dedupe_key",
            unique=True,
            postgresql_where=text("channel_id IS NULL"),
            sqlite_where=text("channel_id IS NULL"),
        ),
        # The drain's claim query and the sweeper's scan.
        Index("ix_inbound_events_due", "status", "workspace_id", "next_attempt_at"),
        # A drain claims its lane's events, WeCom's before the OA's.
        Index(
            "ix_inbound_events_lane_due",
            "workspace_id",
            "lane",
            "platform",
            "status",
            "next_attempt_at",
        ),
        # The admin inbox: a workspace's events of a status, newest first.
        Index(
            "ix_inbound_events_workspace_status_received", "workspace_id", "status", "received_at"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    # None for a touchpoint that names no channel.
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    # "oa" or "wecom" (an XML callback), "web" or "api" (a JSON touchpoint).
    platform: Mapped[str] = mapped_column(String(10))
    dedupe_key: Mapped[str] = mapped_column(String(255))
    # The decrypted XML exactly as WeChat sent it, or a touchpoint's JSON.
    payload: Mapped[str] = mapped_column(Text)
    # core.lanes.lane_of the person's key: the drain that takes it (one person, one lane).
    lane: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    kind: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default=InboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
