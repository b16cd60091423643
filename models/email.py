"""Email as a channel: templates, every message sent (its tracking token and fate), and the
addresses that must never be mailed again."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, BigId, UTCDateTime, utcnow
from models.journey import Step


class EmailTemplate(Base):
    """Subject and HTML body, sandboxed Jinja over the person's variables."""

    __tablename__ = "email_templates"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    name: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(200))
    body_html: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EmailStatus(StrEnum):
    PLANNED = "planned"
    SENDING = "sending"  # recorded before the SMTP call: a resume never sends it twice
    SENT = "sent"
    SKIPPED = "skipped"  # suppressed, no address, rendering failed: `reason` says which
    FAILED = "failed"  # the server refused it for good (`reason`), or retries ran out
    BOUNCED = "bounced"  # reported afterwards through the API


class EmailMessage(Base):
    """One email to one person, from a journey step or a push: `token` names it in the open
    pixel, its tracked clicks and its one-click unsubscribe."""

    __tablename__ = "email_messages"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key"),
        # A push's next batch: its planned messages in id order, read off the index.
        Index("ix_email_messages_push", "push_id", "status", "id"),
        Index("ix_email_messages_contact", "contact_id"),
        Index("ix_email_messages_workspace_created", "workspace_id", "created_at"),
        # The bounce and complaint API finds the message a provider reports by its
        # Message-ID, or by the address's latest sent message.
        Index("ix_email_messages_message_id", "workspace_id", "message_id"),
        Index("ix_email_messages_address", "workspace_id", "to_address", "sent_at"),
        # The sender's claim: a workspace's due journey emails (pushes claim by push_id).
        Index(
            "ix_email_messages_due",
            "workspace_id",
            "next_attempt_at",
            postgresql_where=text("status IN ('planned', 'sending') AND push_id IS NULL"),
            sqlite_where=text("status IN ('planned', 'sending') AND push_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    # "journey:<enrolment>:<version>:<node>:<visit>" or "push:<push>:<contact>".
    idempotency_key: Mapped[str] = mapped_column(String(200))
    token: Mapped[str] = mapped_column(String(32), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    template_id: Mapped[int | None] = mapped_column(
        ForeignKey("email_templates.id", ondelete="SET NULL")
    )
    push_id: Mapped[int | None] = mapped_column(ForeignKey("pushes.id", ondelete="CASCADE"))
    step_id: Mapped[int | None] = mapped_column(ForeignKey("journey_steps.id", ondelete="SET NULL"))
    to_address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), default=EmailStatus.PLANNED)
    reason: Mapped[str | None] = mapped_column(String(300))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Planned: due then (a temporary failure backs off). Sending: the lease of the attempt
    # under way; a row still sending after it was left by a sender that died.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[str | None] = mapped_column(String(250))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    open_count: Mapped[int] = mapped_column(Integer, default=0)
    click_count: Mapped[int] = mapped_column(Integer, default=0)

    step: Mapped[Step | None] = relationship()


class SuppressionReason(StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"  # a hard bounce
    COMPLAINED = "complained"  # marked as spam


class EmailSuppression(Base):
    """An address Harpoon no longer mails, in this workspace, and why."""

    __tablename__ = "email_suppressions"

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    address: Mapped[str] = mapped_column(String(320), primary_key=True)  # lower-cased
    reason: Mapped[str] = mapped_column(String(12))
    detail: Mapped[str | None] = mapped_column(String(300))
    # The message that led to it (an unsubscribe link, a bounce report), when known.
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("email_messages.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
