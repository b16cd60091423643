"""The salesperson's side: tasks, notes, and each account's sales timeline."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, JSONDoc, UTCDateTime, utcnow


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    SKIPPED = "skipped"


class TaskSource(StrEnum):
    MQA = "mqa"  # the account reached MQA
    SURGE = "surge"  # its intent surged
    ROUTING = "routing"  # it was routed to the owner
    JOURNEY = "journey"  # a journey's "task for the owner" action
    RULE = "rule"  # a task rule for a stage or tier
    MANUAL = "manual"  # a person, in the sidebar or the admin


class Task(Base):
    """Something a salesperson should do for a person or an account, by a due time."""

    __tablename__ = "sales_tasks"
    __table_args__ = (
        # One MQA entry, one journey step, one routing: one task however often it is asked.
        UniqueConstraint("workspace_id", "dedupe_key"),
        # "My tasks due": a user's open tasks by due time.
        Index(
            "ix_sales_tasks_assignee_open",
            "workspace_id",
            "assignee_id",
            "due_at",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        Index("ix_sales_tasks_account", "account_id", "created_at"),
        Index("ix_sales_tasks_contact", "contact_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    # The user who should do it (the account's owner when it was created); None = unassigned.
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    source: Mapped[str] = mapped_column(String(12), default=TaskSource.MANUAL)
    title: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(String(1000))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(10), default=TaskStatus.OPEN)
    # What the salesperson said when they closed it ("called, meeting on Friday").
    outcome: Mapped[str | None] = mapped_column(String(1000))
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # When the assignee's WeCom digest last reminded them of it.
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TaskRule(Base):
    """When an account enters a stage or a tier, a task for its owner ("call within 4 h")."""

    __tablename__ = "sales_task_rules"
    __table_args__ = (Index("ix_sales_task_rules_workspace", "workspace_id", "on", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    # "stage" (value: a stage key of the workspace's model) or "tier" (value: "1", "2", "3").
    on: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(30))
    title: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(String(1000))
    due_hours: Mapped[int] = mapped_column(Integer, default=24)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SalesNote(Base):
    """A salesperson's note on a person or an account (the sidebar's quick note)."""

    __tablename__ = "sales_notes"
    __table_args__ = (
        Index("ix_sales_notes_account", "account_id", "created_at"),
        Index("ix_sales_notes_contact", "contact_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AccountEventKind(StrEnum):
    ROUTED = "routed"  # an owner assigned by routing
    OWNER_CHANGED = "owner_changed"  # by a person or a transfer
    SLA_MET = "sla_met"
    SLA_ESCALATED = "sla_escalated"
    SLA_REASSIGNED = "sla_reassigned"
    TASK_CREATED = "task_created"
    TASK_CLOSED = "task_closed"
    NOTE = "note"
    CHAT_SEND = "chat_send"  # content sent into a chat from the sidebar
    TRANSFER = "transfer"  # customers handed over to another salesperson
    OPPORTUNITY = "opportunity"  # an opportunity created, moved, won or lost
    PROGRAM = "program"  # a tier program requested, approved, executed


class AccountEvent(Base):
    """One entry on an account's sales timeline: who was routed, what was done, and why."""

    __tablename__ = "account_events"
    __table_args__ = (Index("ix_account_events_account", "account_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    kind: Mapped[str] = mapped_column(String(20))
    # Who did it (None: Harpoon itself, e.g. routing or an SLA).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(String(500))
    data: Mapped[dict] = mapped_column(JSONDoc, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
