from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, BigId, UTCDateTime, utcnow


class IdentityKind(StrEnum):
    OPENID = "openid"  # per OA channel
    UNIONID = "unionid"  # per workspace (one Open Platform account)
    EXTERNAL_USERID = "external_userid"  # per WeCom corp channel
    PHONE = "phone"
    EMAIL = "email"


class Contact(Base):
    """A person (lead)."""

    __tablename__ = "contacts"
    # The admin list: a workspace's contacts, most recently active first.
    __table_args__ = (Index("ix_contacts_workspace_last_seen", "workspace_id", "last_seen_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(100))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    identities: Mapped[list["Identity"]] = relationship(back_populates="contact")


class Identity(Base):
    """One way to recognise a contact: an openid, unionid, external_userid, ..."""

    __tablename__ = "identities"
    __table_args__ = (
        # channel_id is NULL for workspace-wide kinds; coalesce keeps those unique too.
        Index(
            "uq_identities_workspace_kind_channel_value",
            "workspace_id",
            "kind",
            text("coalesce(channel_id, 0)"),
            "value",
            unique=True,
        ),
        # Exact lookup by value alone (admin search by openid / external_userid / unionid).
        Index("ix_identities_workspace_value", "workspace_id", "value"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    value: Mapped[str] = mapped_column(String(128))
    # For OA openids: is the person following that OA now, as of which event.
    following: Mapped[bool | None] = mapped_column(Boolean)
    following_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    contact: Mapped[Contact] = relationship(back_populates="identities")

    def set_following(self, following: bool, as_of: datetime) -> None:
        """Events may be processed out of order (retries, parallel drains): newest wins."""
        if self.following_changed_at is None or as_of >= self.following_changed_at:
            self.following = following
            self.following_changed_at = as_of
