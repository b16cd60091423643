"""Routing hot accounts to salespeople: the rules, the first-touch SLA, and each
assignment with its outcome."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, JSONDoc, UTCDateTime, utcnow


class RoutingMethod(StrEnum):
    ROUND_ROBIN = "round_robin"  # the next eligible user after the last one given an account
    LEAST_LOADED = "least_loaded"  # the eligible user with the fewest open routed accounts


class BreachAction(StrEnum):
    ESCALATE = "escalate"  # tell the manager and the owner
    REASSIGN = "reassign"  # to the next eligible user of the same rule, once; then escalate


class RoutingTrigger(StrEnum):
    MQA = "mqa"
    SURGE = "surge"
    NEW_CONTACT = "new_contact"  # a person of an unowned target account appeared


class AssignmentOutcome(StrEnum):
    PENDING = "pending"  # waiting for the owner's first touch
    MET = "met"  # touched within the SLA
    ESCALATED = "escalated"  # not touched in time: the manager was told
    REASSIGNED = "reassigned"  # not touched in time: the account went to another user
    UNASSIGNED = "unassigned"  # nobody eligible had room: the admins were told


OPEN_OUTCOMES = (AssignmentOutcome.PENDING, AssignmentOutcome.MET, AssignmentOutcome.ESCALATED)


class RoutingRule(Base):
    """Accounts matching the territory (empty = any) go to one of the eligible users."""

    __tablename__ = "routing_rules"
    __table_args__ = (Index("ix_routing_rules_workspace_position", "workspace_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)  # rules are tried in this order
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    regions: Mapped[list] = mapped_column(JSONDoc, default=list)
    industries: Mapped[list] = mapped_column(JSONDoc, default=list)
    tiers: Mapped[list] = mapped_column(JSONDoc, default=list)
    user_ids: Mapped[list] = mapped_column(JSONDoc, default=list)  # in round-robin order
    method: Mapped[str] = mapped_column(String(20), default=RoutingMethod.ROUND_ROBIN)
    # Open routed accounts a user holds at most (None: no cap); a user at it is skipped.
    capacity: Mapped[int | None] = mapped_column(Integer)
    # Round-robin's place: the user last given an account by this rule.
    last_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RoutingSettings(Base):
    """A workspace's first-touch SLA (defaults apply while it has no row)."""

    __tablename__ = "routing_settings"

    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    sla_hours: Mapped[float] = mapped_column(Float, default=4.0)  # working hours
    work_start: Mapped[str] = mapped_column(String(5), default="09:00")
    work_end: Mapped[str] = mapped_column(String(5), default="18:00")
    work_days: Mapped[list] = mapped_column(JSONDoc, default=lambda: [1, 2, 3, 4, 5])
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    breach_action: Mapped[str] = mapped_column(String(10), default=BreachAction.ESCALATE)
    # Who hears of a breach besides the owner (None: the workspace's owners and admins).
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RoutingAssignment(Base):
    """One routing of an account: to whom, by which rule and why, and its SLA's outcome."""

    __tablename__ = "routing_assignments"
    __table_args__ = (
        Index("ix_routing_assignments_workspace_assigned", "workspace_id", "assigned_at"),
        # The SLA check: a workspace's pending assignments.
        Index("ix_routing_assignments_workspace_outcome", "workspace_id", "outcome"),
        # A user's load: their open routed accounts.
        Index("ix_routing_assignments_user_outcome", "workspace_id", "user_id", "outcome"),
        Index("ix_routing_assignments_account", "account_id", "assigned_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # None: unassigned
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("routing_rules.id"))
    trigger: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(300))
    # 1 for the first routing; 2 for the reassignment after a breach.
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_touch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What the first touch was: note, chat_send, task_closed, stage.
    first_touch: Mapped[str | None] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(12), default=AssignmentOutcome.PENDING)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
