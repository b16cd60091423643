"""Revenue: the workspace's sales pipeline, opportunities with their history, the
attribution of each opportunity to the touches before it, and the tier programs sales
order for an account."""

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, UTCDateTime, utcnow

Money = Numeric(14, 2)  # CNY, exact: amounts are never floats


class OpportunityType(StrEnum):
    NEW = "new"
    RENEWAL = "renewal"
    EXPANSION = "expansion"


class OpportunityStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class OpportunitySource(StrEnum):
    CRM = "crm"  # PUT /api/v1/opportunities/<external_id>
    IMPORT = "import"  # a CSV/XLSX file
    ADMIN = "admin"  # typed in the admin


class PipelineStage(Base):
    """One stage of the workspace's sales pipeline, in order, with the account stage it
    moves an account to and, for the closing stages, the outcome it means."""

    __tablename__ = "pipeline_stages"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    key: Mapped[str] = mapped_column(String(30))  # what a CRM sends, e.g. "proposal"
    name: Mapped[str] = mapped_column(String(60))  # what people read, e.g. "方案报价"
    position: Mapped[int] = mapped_column(Integer)
    probability: Mapped[int] = mapped_column(Integer, default=0)  # 0-100, the default
    # The account stage an opportunity at this stage moves its account to (forward only).
    account_stage: Mapped[str | None] = mapped_column(String(30))
    outcome: Mapped[str | None] = mapped_column(String(8))  # won / lost / None (open)


class Opportunity(Base):
    """A deal on an account: from a CRM (keyed by its external id), an import or a person."""

    __tablename__ = "opportunities"
    __table_args__ = (
        UniqueConstraint("workspace_id", "external_id"),
        UniqueConstraint("workspace_id", "request_key"),
        Index("ix_opportunities_workspace_account", "workspace_id", "account_id"),
        Index("ix_opportunities_workspace_opened", "workspace_id", "opened_at"),
        Index("ix_opportunities_workspace_closed", "workspace_id", "status", "closed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    # The CRM's id: a re-sent PUT finds the same row. None for one typed in the admin.
    external_id: Mapped[str | None] = mapped_column(String(100))
    # The admin form's nonce: a second POST of the same form (a double click) finds this
    # row instead of making another. Apart from external_id, which is the CRM's.
    request_key: Mapped[str | None] = mapped_column(String(40))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    # The person the deal is with, when the CRM names them.
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    name: Mapped[str] = mapped_column(String(200))
    amount: Mapped[Decimal] = mapped_column(Money)
    type: Mapped[str] = mapped_column(String(12), default=OpportunityType.NEW)
    stage: Mapped[str] = mapped_column(String(30))  # a PipelineStage key
    probability: Mapped[int] = mapped_column(Integer)  # 0-100
    status: Mapped[str] = mapped_column(String(8), default=OpportunityStatus.OPEN)
    lost_reason: Mapped[str | None] = mapped_column(String(200))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    source: Mapped[str] = mapped_column(String(12))  # OpportunitySource
    # When the deal was created (in the CRM) and closed, won or lost: attribution windows
    # and KPIs count from these, not from when Harpoon heard of it.
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # When revenue.attribution last started crediting it: changed since = updated_at later.
    attributed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class OpportunityChange(Base):
    """An opportunity was created or its stage, status or amount changed: its history, and
    the pipeline-over-time charts."""

    __tablename__ = "opportunity_changes"
    __table_args__ = (
        Index("ix_opportunity_changes_opportunity", "opportunity_id", "changed_at"),
        Index("ix_opportunity_changes_workspace_changed", "workspace_id", "changed_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id"))
    from_stage: Mapped[str | None] = mapped_column(String(30))
    to_stage: Mapped[str] = mapped_column(String(30))
    status: Mapped[str] = mapped_column(String(8))
    amount: Mapped[Decimal] = mapped_column(Money)
    source: Mapped[str] = mapped_column(String(12))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TouchSource(StrEnum):
    """Where an attributed touch was recorded."""

    INTERACTION = "interaction"  # interactions.id: the person did something
    PUSH = "push"  # push_recipients.id: a push reached them
    JOURNEY = "journey"  # journey_steps.id: a journey acted on them
    PROGRAM = "program"  # program_orders.id: a tier program executed for the account


class AttributionTouch(Base):
    """One touch credited toward one opportunity under every model at once, for the touch's
    dimension (the content item, push, journey, code, form, campaign... it counts for).
    Rebuilt for an opportunity whenever it is recomputed; `basis` is the window's end:
    the opportunity's creation (pipeline) or its win (revenue)."""

    __tablename__ = "attribution_touches"
    __table_args__ = (
        Index("ix_attribution_touches_opportunity", "opportunity_id"),
        Index("ix_attribution_touches_dimension", "workspace_id", "dimension", "ref"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    opportunity_id: Mapped[int] = mapped_column(ForeignKey("opportunities.id"))
    basis: Mapped[str] = mapped_column(String(8))  # created / won
    source: Mapped[str] = mapped_column(String(12))  # TouchSource
    source_id: Mapped[int] = mapped_column(BigInteger)
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(64))  # the interaction kind, "push", ...
    # What it counts for: content / form / push / journey / qr / contact_way / campaign /
    # event / live / email / sales / program / other, and that thing's id or name.
    dimension: Mapped[str] = mapped_column(String(12))
    ref: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The share of the opportunity each model gives this touch; per model they sum to 1
    # over the opportunity's touches of one basis and one dimension.
    first_touch: Mapped[float] = mapped_column(Float, default=0.0)
    last_touch: Mapped[float] = mapped_column(Float, default=0.0)
    linear: Mapped[float] = mapped_column(Float, default=0.0)
    u_shaped: Mapped[float] = mapped_column(Float, default=0.0)
    w_shaped: Mapped[float] = mapped_column(Float, default=0.0)
    time_decay: Mapped[float] = mapped_column(Float, default=0.0)


class ProgramKind(StrEnum):
    CUSTOM_CONTENT = "custom_content"
    EVENT_INVITE = "event_invite"  # a closed-door event invitation
    GIFT = "gift"  # a gift mailing
    ADS = "ads"
    EXECUTIVE_VISIT = "executive_visit"
    OTHER = "other"


class Program(Base):
    """One item of a tier's menu of programs, with its budget for the period."""

    __tablename__ = "tier_programs"
    __table_args__ = (Index("ix_tier_programs_workspace_tier", "workspace_id", "tier"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    tier: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))  # ProgramKind
    description: Mapped[str | None] = mapped_column(String(500))
    budget: Mapped[Decimal] = mapped_column(Money)  # the whole menu item's budget
    unit_cost: Mapped[Decimal | None] = mapped_column(Money)  # expected per account
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ProgramOrderStatus(StrEnum):
    REQUESTED = "requested"  # ticked by a salesperson
    APPROVED = "approved"  # marketing will run it
    REJECTED = "rejected"
    EXECUTED = "executed"  # done, with its cost
    CANCELLED = "cancelled"


OPEN_ORDER_PREDICATE = "status IN ('requested', 'approved')"


class ProgramOrder(Base):
    """A program ordered for one account: requested by sales, approved and executed by
    marketing with its cost."""

    __tablename__ = "program_orders"
    __table_args__ = (
        Index("ix_program_orders_workspace_status", "workspace_id", "status"),
        Index("ix_program_orders_account", "account_id"),
        # One open order per program and account, even for two taps at the same moment.
        Index(
            "uq_program_orders_open",
            "program_id",
            "account_id",
            unique=True,
            postgresql_where=text(OPEN_ORDER_PREDICATE),
            sqlite_where=text(OPEN_ORDER_PREDICATE),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    program_id: Mapped[int] = mapped_column(ForeignKey("tier_programs.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    status: Mapped[str] = mapped_column(String(10), default=ProgramOrderStatus.REQUESTED)
    note: Mapped[str | None] = mapped_column(String(500))
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    executed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cost: Mapped[Decimal | None] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
