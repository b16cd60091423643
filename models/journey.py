"""Journeys: their versions (documents, see journeys.model), enrolments with the indexed
time of their next step, and the step log that makes a retried step harmless."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, JSONDoc, UTCDateTime, utcnow


class JourneyStatus(StrEnum):
    DRAFT = "draft"
    LIVE = "live"
    PAUSED = "paused"  # enrolments wait; nobody new enters
    ARCHIVED = "archived"


class Journey(Base):
    __tablename__ = "journeys"
    __table_args__ = (UniqueConstraint("workspace_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(12), default=JourneyStatus.DRAFT)
    # The version new enrolments start on; editing a live journey makes a new one.
    live_version: Mapped[int | None] = mapped_column(Integer)
    # Condition triggers (tags added, stages reached, MQA, scores, segments, dates) are
    # checked for what happened since this moment.
    triggers_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JourneyVersion(Base):
    __tablename__ = "journey_versions"
    __table_args__ = (UniqueConstraint("journey_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EnrolmentStatus(StrEnum):
    ACTIVE = "active"  # its next step is due at next_run_at
    WAITING = "waiting"  # for an event, until next_run_at (the timeout)
    COMPLETED = "completed"  # reached an exit or the end of a path
    GOAL = "goal"  # left because a goal was achieved
    EXITED = "exited"  # removed by a person, or the journey was archived


OPEN_STATUSES = (EnrolmentStatus.ACTIVE, EnrolmentStatus.WAITING)


class Enrolment(Base):
    """One contact's (or, for account journeys, one account's) pass through a journey."""

    __tablename__ = "enrolments"
    __table_args__ = (
        # The due-step runner's claim: open enrolments by due time.
        Index(
            "ix_enrolments_due",
            "next_run_at",
            postgresql_where=text("status IN ('active', 'waiting')"),
            sqlite_where=text("status IN ('active', 'waiting')"),
        ),
        Index("ix_enrolments_journey_contact", "journey_id", "contact_id"),
        Index("ix_enrolments_journey_account", "journey_id", "account_id"),
        Index("ix_enrolments_contact_status", "contact_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    node_id: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(12), default=EnrolmentStatus.ACTIVE)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # How many times it has been at its current node (a loop through a wait revisits it).
    visit: Mapped[int] = mapped_column(Integer, default=1)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    entered_node: Mapped[str] = mapped_column(String(40))
    # Why: {"trigger": ..., "interaction_id": ...} for the contact's journey history.
    entered_because: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Its action waits (bounded) for enrichment to say who a new WeCom customer is; the
    # enrichment makes it due at once when it knows.
    awaits_enrichment: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )


class Step(Base):
    """One node executed (or skipped) for an enrolment: unique per visit, so a retried
    job finds it done and never sends twice."""

    __tablename__ = "journey_steps"
    __table_args__ = (
        UniqueConstraint("enrolment_id", "version", "node_id", "visit"),
        Index("ix_journey_steps_journey_node", "journey_id", "node_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("enrolments.id", ondelete="CASCADE"))
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    node_id: Mapped[str] = mapped_column(String(40))
    visit: Mapped[int] = mapped_column(Integer, default=1)
    # entered, jumped, done, skipped, failed, waiting, timed_out, goal, queued (its
    # message or webhook is in the outbox), merged (its person was merged into another)
    outcome: Mapped[str] = mapped_column(String(12))
    detail: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
