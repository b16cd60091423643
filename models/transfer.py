"""Customer transfers (客户继承): one salesperson's WeCom customers handed to another."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, UTCDateTime, utcnow


class TransferKind(StrEnum):
    IN_SERVICE = "in_service"  # externalcontact/transfer_customer
    DEPARTED = "departed"  # the handover left: resigned/transfer_customer


class TransferItemStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # the call may have gone out: checked with transfer_result, not resent
    WAITING = "waiting"  # WeCom started the takeover (24 h unless the customer refuses)
    DONE = "done"
    REFUSED = "refused"  # the customer refused
    LIMIT = "limit"  # the takeover was at their customer limit
    FAILED = "failed"  # WeCom refused the customer (its errcode and message kept)


FINAL_ITEM_STATUSES = frozenset(
    {
        TransferItemStatus.DONE,
        TransferItemStatus.REFUSED,
        TransferItemStatus.LIMIT,
        TransferItemStatus.FAILED,
    }
)


class Transfer(Base):
    """A handover member's customers going to a takeover member of the same corp."""

    __tablename__ = "transfers"
    __table_args__ = (Index("ix_transfers_workspace_created", "workspace_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    kind: Mapped[str] = mapped_column(String(12), default=TransferKind.IN_SERVICE)
    handover_userid: Mapped[str] = mapped_column(String(64))
    takeover_userid: Mapped[str] = mapped_column(String(64))
    # The account whose customers were chosen (None: chosen one by one, or all of them).
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    # What the customer reads (transfer_success_msg); WeCom's default when empty.
    message: Mapped[str | None] = mapped_column(String(200))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Every customer's outcome is final.
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class TransferItem(Base):
    """One customer of a transfer, tracked to the end."""

    __tablename__ = "transfer_items"
    __table_args__ = (
        UniqueConstraint("transfer_id", "external_userid"),
        Index("ix_transfer_items_workspace_status", "workspace_id", "status"),
        Index("ix_transfer_items_customer", "channel_id", "external_userid"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    transfer_id: Mapped[int] = mapped_column(ForeignKey("transfers.id"))
    external_userid: Mapped[str] = mapped_column(String(128))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    status: Mapped[str] = mapped_column(String(10), default=TransferItemStatus.QUEUED)
    # WeCom's per-customer errcode, or the call's, and what it means.
    errcode: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(500))
    # The idempotency key: which call carried it, recorded before the call went out.
    call_key: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
