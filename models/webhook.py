from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, EncryptedString, UTCDateTime, utcnow


class WebhookSecret(Base):
    """The key a workspace's webhooks are signed with, one per workspace, encrypted at rest
    (Harpoon must compute signatures with it). After a rotation the previous key signs
    too until `previous_until`, so receivers can switch without losing a delivery."""

    __tablename__ = "webhook_secrets"

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), unique=True)
    secret: Mapped[str] = mapped_column(EncryptedString(512))
    # The secret's first characters, to tell which one a receiver holds.
    prefix: Mapped[str] = mapped_column(String(16))
    previous_secret: Mapped[str | None] = mapped_column(EncryptedString(512))
    previous_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
