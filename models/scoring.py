"""Scoring: the workspace's model (versioned), the points ledger, stage history and the
daily account snapshots the trend charts read."""

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, JSONDoc, UTCDateTime, utcnow


class ScoringModel(Base):
    """One saved version of a workspace's scoring model (rules, weights, MQA, tiers,
    stages) as a document; the highest version is in force, older ones are its history."""

    __tablename__ = "scoring_models"
    __table_args__ = (UniqueConstraint("workspace_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict] = mapped_column(JSONDoc)
    # What the marketer changed, e.g. "Weights: bottom-up preset".
    note: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScoreEntry(Base):
    """Points one rule gave one interaction. Keyed by (interaction, rule), so scoring an
    interaction again adds nothing; a contact's lead score is recomputable from here."""

    __tablename__ = "score_ledger"
    __table_args__ = (
        UniqueConstraint("interaction_id", "rule_key"),
        # Caps, lead scores, surges and MQA windows: a contact's entries by time.
        Index("ix_score_ledger_contact_occurred", "contact_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    interaction_id: Mapped[int] = mapped_column(ForeignKey("interactions.id"))
    rule_key: Mapped[str] = mapped_column(String(40))
    points: Mapped[float] = mapped_column(Float)
    # points * 2^(age at the decay epoch / half-life): summed, then scaled to today.
    weight: Mapped[float] = mapped_column(Float)
    minutes: Mapped[float] = mapped_column(Float, default=0.0)
    signal: Mapped[str | None] = mapped_column(String(12))  # intent / engagement
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StageChange(Base):
    """An account or contact moved between stages, by a rule or by a person."""

    __tablename__ = "stage_changes"
    __table_args__ = (
        Index("ix_stage_changes_subject", "subject", "subject_id", "changed_at"),
        Index("ix_stage_changes_workspace_changed", "workspace_id", "changed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    subject: Mapped[str] = mapped_column(String(10))  # account / contact
    subject_id: Mapped[int] = mapped_column(BigId)
    from_stage: Mapped[str | None] = mapped_column(String(30))
    to_stage: Mapped[str] = mapped_column(String(30))
    # e.g. "first interaction", "account score 212 ≥ 150", "MQA rule 委员会成熟", or typed by sales.
    reason: Mapped[str] = mapped_column(String(300))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccountSnapshot(Base):
    """An account's score, tier and stage at the end of a day (the trend charts)."""

    __tablename__ = "account_snapshots"
    __table_args__ = (UniqueConstraint("account_id", "day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    day: Mapped[date] = mapped_column(Date)
    score: Mapped[float] = mapped_column(Float)
    scaled_score: Mapped[float | None] = mapped_column(Float)  # 0-100 (None before 0023)
    tier: Mapped[int | None] = mapped_column(Integer)
    stage: Mapped[str | None] = mapped_column(String(30))
    mqa: Mapped[bool] = mapped_column(Boolean, default=False)
    surging: Mapped[bool] = mapped_column(Boolean, default=False)
    engaged_contacts: Mapped[int] = mapped_column(Integer, default=0)
    engagement_points: Mapped[float] = mapped_column(Float, default=0.0)
