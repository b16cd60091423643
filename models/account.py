from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class Account(Base):
    """A company: a target account from an ICP list, or one a contact's company revealed."""

    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("workspace_id", "normalized_name"),
        Index("ix_accounts_workspace_domain", "workspace_id", "domain"),
        Index("ix_accounts_workspace_target", "workspace_id", "is_target"),
        # The accounts list sorts and filters by these (score first by default).
        Index("ix_accounts_workspace_score", "workspace_id", "score"),
        Index("ix_accounts_workspace_tier", "workspace_id", "tier"),
        Index("ix_accounts_workspace_stage", "workspace_id", "stage"),
        Index("ix_accounts_workspace_last_active", "workspace_id", "last_active_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    name: Mapped[str] = mapped_column(String(200))
    # crm.companies.normalize_company(name): one company, one account.
    normalized_name: Mapped[str] = mapped_column(String(200))
    # The email domain that identifies its people (e.g. "huaxin.com").
    domain: Mapped[str | None] = mapped_column(String(100))
    # On the target-account (ICP) list, rather than only met through a contact.
    is_target: Mapped[bool] = mapped_column(Boolean, default=False)
    industry: Mapped[str | None] = mapped_column(String(50))
    region: Mapped[str | None] = mapped_column(String(50))
    employees: Mapped[int | None] = mapped_column(Integer)
    annual_revenue: Mapped[float | None] = mapped_column(Float)  # in the workspace's currency
    acv: Mapped[float | None] = mapped_column(Float)  # expected annual contract value
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Scoring (scoring.engine): kept current by every drained batch and the daily refresh.
    score: Mapped[float] = mapped_column(Float, default=0.0)  # raw points (the explanation)
    # The score people read, 0-100: the model's Scale of the raw points.
    scaled_score: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    fit: Mapped[float] = mapped_column(Float, default=0.0)  # 0-100, ICP attributes matched
    tier: Mapped[int | None] = mapped_column(Integer)
    stage: Mapped[str | None] = mapped_column(String(30))
    # Every stage the account was ever moved to, ",target,mqa," (scoring.stages writes it
    # with each move; the lifecycle KPI groups accounts by it).
    stages_reached: Mapped[str | None] = mapped_column(Text)
    mqa: Mapped[bool] = mapped_column(Boolean, default=False)
    mqa_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    surging: Mapped[bool] = mapped_column(Boolean, default=False)
    surge_ratio: Mapped[float | None] = mapped_column(Float)  # this week / 4-week weekly mean
    intent_points: Mapped[float] = mapped_column(Float, default=0.0)
    engagement_points: Mapped[float] = mapped_column(Float, default=0.0)
    scored_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Its people's latest interaction (crm.activity keeps it with the interactions).
    last_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AccountReactivation(Base):
    """An account's people active again after at least crm.activity.REACTIVATION_DAYS of
    silence: the interaction before the silence and the one that ended it."""

    __tablename__ = "account_reactivations"
    __table_args__ = (
        Index("ix_account_reactivations_workspace_at", "workspace_id", "reactivated_at"),
        Index("ix_account_reactivations_account", "account_id", "reactivated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    previous_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reactivated_at: Mapped[datetime] = mapped_column(UTCDateTime)
