"""The outbox: what a journey decided must reach the outside (a message, a webhook),
written in the decision's transaction with its idempotency key and delivered by a sender
job after the commit."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, BigId, JSONDoc, UTCDateTime, utcnow
from models.journey import Step


class OutboxStatus(StrEnum):
    PENDING = "pending"  # due at next_attempt_at
    SENDING = "sending"  # claimed, the call under way until next_attempt_at (its lease)
    SENT = "sent"
    FAILED = "failed"


class OutboxItem(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("workspace_id", "idempotency_key"),
        # The sender's claim (and the sweeper's look): due rows by time, per workspace.
        Index(
            "ix_outbox_due",
            "workspace_id",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'sending')"),
            sqlite_where=text("status IN ('pending', 'sending')"),
        ),
        Index("ix_outbox_step", "step_id"),
        Index("ix_outbox_contact", "contact_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    kind: Mapped[str] = mapped_column(String(30))  # cs_message, template_message, webhook
    # e.g. "journey:<enrolment>:<version>:<node>:<visit>": one row per decision.
    idempotency_key: Mapped[str] = mapped_column(String(200))
    step_id: Mapped[int | None] = mapped_column(ForeignKey("journey_steps.id", ondelete="SET NULL"))
    # The person it is for (follows merges: the sender resolves the survivor).
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    # What backs off together: "oa:<channel id>", or a webhook's host.
    destination: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    status: Mapped[str] = mapped_column(String(12), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    step: Mapped[Step | None] = relationship()
