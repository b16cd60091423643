from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class SignInRefusal(StrEnum):
    """Why a WeCom member's sign-in found no admin user."""

    NOT_MEMBER = "not_member"  # WeCom answered an openid: not a member of the corp
    NO_STAFF = "no_staff"  # a member Harpoon has no Staff row for (not synced yet)
    INACTIVE_STAFF = "inactive_staff"  # no longer has the customer-contact permission
    NO_USER = "no_user"  # a Staff row mapped to no admin user
    INACTIVE_USER = "inactive_user"  # mapped to a deactivated user
    PASSWORD_ONLY = "password_only"  # mapped to an owner or admin: they use their password


class RefusedSignIn(Base):
    """Someone who opened Harpoon in WeCom and could not be signed in, until it is fixed:
    the admin's Staff page lists them with the mapping control."""

    __tablename__ = "wecom_refused_sign_ins"
    __table_args__ = (UniqueConstraint("channel_id", "member"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    # The member's userid, or the openid WeCom gives for someone outside the corp.
    member: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(default=1)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
