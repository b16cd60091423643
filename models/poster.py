"""Posters (海报): a background image a marketer uploaded, a box where each person's own QR
code goes (their share link to a content item or form, or a salesperson's 联系我 code), and
an optional line of text ("{name} 邀请您参加"); and the rendered PNGs, cached per person."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, utcnow


class PosterTarget(StrEnum):
    CONTENT = "content"  # each person's share link to a content item
    FORM = "form"  # each person's share link to a form
    CONTACT_WAY = "contact_way"  # a salesperson's own 联系我 code


class Poster(Base):
    """A poster template. Its QR box and text position are in the background's pixels;
    `version` grows with every save, so cached renders of an older design are not used."""

    __tablename__ = "posters"
    __table_args__ = (Index("ix_posters_workspace_created", "workspace_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    name: Mapped[str] = mapped_column(String(100))
    background: Mapped[bytes] = mapped_column(LargeBinary)
    background_type: Mapped[str] = mapped_column(String(20))  # image/png or image/jpeg
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    target: Mapped[str] = mapped_column(String(20), default=PosterTarget.CONTENT)
    content_id: Mapped[int | None] = mapped_column(ForeignKey("contents.id"))
    form_id: Mapped[int | None] = mapped_column(ForeignKey("forms.id"))
    # The tracked link (medium "qr") every person's share link goes through.
    link_id: Mapped[int | None] = mapped_column(ForeignKey("tracked_links.id"))
    qr_x: Mapped[int] = mapped_column(Integer)
    qr_y: Mapped[int] = mapped_column(Integer)
    qr_size: Mapped[int] = mapped_column(Integer)
    # "" draws no text; "{name}" stands for the person's name.
    text: Mapped[str] = mapped_column(String(100), default="")
    text_x: Mapped[int] = mapped_column(Integer, default=0)
    text_y: Mapped[int] = mapped_column(Integer, default=0)
    text_size: Mapped[int] = mapped_column(Integer, default=36)
    text_color: Mapped[str] = mapped_column(String(7), default="#333333")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PosterRender(Base):
    """One person's poster as last composed: "staff:<id>" or "contact:<id>", for one
    version of the design. Re-composed when the design changes or the render grows old
    (its share token ages)."""

    __tablename__ = "poster_renders"
    __table_args__ = (UniqueConstraint("poster_id", "person", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"), index=True)
    poster_id: Mapped[int] = mapped_column(ForeignKey("posters.id"))
    person: Mapped[str] = mapped_column(String(40))
    version: Mapped[int] = mapped_column(Integer)
    png: Mapped[bytes] = mapped_column(LargeBinary)
    rendered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
