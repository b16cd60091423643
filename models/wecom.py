from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, JSONDoc, UTCDateTime, utcnow


class FollowRelation(Base):
    """A WeCom customer in one staff member's contacts (a customer may have several)."""

    __tablename__ = "follow_relations"
    __table_args__ = (
        UniqueConstraint("channel_id", "external_userid", "staff_userid"),
        Index("ix_follow_relations_contact", "contact_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    external_userid: Mapped[str] = mapped_column(String(128))
    staff_userid: Mapped[str] = mapped_column(String(64))
    state: Mapped[str | None] = mapped_column(String(30))  # the 联系我 attribution
    add_way: Mapped[int | None]
    remark: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(200))
    remark_corp_name: Mapped[str | None] = mapped_column(String(200))
    remark_mobiles: Mapped[list | None] = mapped_column(JSONDoc)
    # Corp tag ids the staff member set on the customer, as WeCom last told us.
    tag_ids: Mapped[list | None] = mapped_column(JSONDoc)
    added_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
