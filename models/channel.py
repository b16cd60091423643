from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, EncryptedString, UTCDateTime, utcnow


class ChannelKind(StrEnum):
    OA = "oa"
    WECOM = "wecom"


class MessageMode(StrEnum):
    """OA message encryption mode, as set in the OA console."""

    PLAIN = "plain"
    COMPATIBLE = "compatible"
    SAFE = "safe"


class Channel(Base):
    """A connected WeChat Official Account or WeCom corp."""

    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("workspace_id", "kind", "app_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(100))
    # OA appid, or WeCom corp id: also the receive id inside encrypted callbacks.
    app_id: Mapped[str] = mapped_column(String(64))
    # OA: "service" or "subscription"; WeCom: empty.
    account_type: Mapped[str] = mapped_column(String(20), default="")
    message_mode: Mapped[str] = mapped_column(String(12), default=MessageMode.SAFE)
    token: Mapped[str] = mapped_column(EncryptedString(512))
    aes_key: Mapped[str | None] = mapped_column(EncryptedString(512))
    # Kept after a key rotation: WeChat may still send with the old key for a while.
    previous_aes_key: Mapped[str | None] = mapped_column(EncryptedString(512))
    # OA AppSecret, or WeCom customer-contact secret.
    secret: Mapped[str | None] = mapped_column(EncryptedString(512))
    agent_id: Mapped[str | None] = mapped_column(String(32))
    agent_secret: Mapped[str | None] = mapped_column(EncryptedString(512))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
