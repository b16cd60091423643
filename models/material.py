"""The material library (素材库): images, files, articles, link and mini-program cards a
workspace sends through WeChat and WeCom, and each one's uploads to each platform.

Image and file bytes live in the database, so every web and worker machine sees them.
"""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column

from models.base import Base, UTCDateTime, utcnow


class MaterialKind(StrEnum):
    IMAGE = "image"
    FILE = "file"
    ARTICLE = "article"
    LINK = "link"  # a link card: title, description, url, cover
    MINIPROGRAM = "miniprogram"  # a mini-program card: appid, page, title, cover


class Material(Base):
    """One library item. `sha256` is the hash of what a platform receives (the bytes, or an
    article's or card's fields with its cover's hash): an upload made of another hash is
    stale and is made again."""

    __tablename__ = "materials"
    __table_args__ = (Index("ix_materials_workspace_kind", "workspace_id", "kind", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    kind: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(100))
    # image and file
    data: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    filename: Mapped[str | None] = mapped_column(String(200))
    mime: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    # article, link and mini-program cards
    title: Mapped[str | None] = mapped_column(String(64))
    author: Mapped[str | None] = mapped_column(String(16))
    digest: Mapped[str | None] = mapped_column(String(120))  # a card's description
    body: Mapped[str | None] = mapped_column(Text)  # an article's text, paragraphs
    content_html: Mapped[str | None] = mapped_column(Text)  # built from `body`, escaped
    url: Mapped[str | None] = mapped_column(String(1024))  # content_source_url / card link
    cover_id: Mapped[int | None] = mapped_column(ForeignKey("materials.id"))
    appid: Mapped[str | None] = mapped_column(String(64))
    page_path: Mapped[str | None] = mapped_column(String(256))
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UploadPurpose(StrEnum):
    OA_IMAGE = "oa_image"  # material/add_material?type=image: media_id and url
    OA_THUMB = "oa_thumb"  # material/add_material?type=thumb: an article's cover
    OA_FILE = "oa_file"  # material/add_material?type=file
    OA_DRAFT = "oa_draft"  # draft/add: the mpnews media_id a mass send sends
    WECOM_MEDIA = "wecom_media"  # media/upload: temporary, 3 days
    WECOM_IMAGE_URL = "wecom_image_url"  # media/uploadimg: a lasting URL


class UploadStatus(StrEnum):
    UPLOADING = "uploading"  # recorded before the call
    OK = "ok"
    FAILED = "failed"


class MaterialUpload(Base):
    """A material as one platform holds it, for one purpose: one row per material, channel
    and purpose, rewritten when the material changes or the platform forgets it."""

    __tablename__ = "material_uploads"
    __table_args__ = (UniqueConstraint("material_id", "channel_id", "purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id"))
    material_id: Mapped[int] = mapped_column(ForeignKey("materials.id"))
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    purpose: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default=UploadStatus.UPLOADING)
    sha256: Mapped[str] = mapped_column(String(64))  # of the material when it was uploaded
    media_id: Mapped[str | None] = mapped_column(String(128))
    url: Mapped[str | None] = mapped_column(String(1024))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    uploaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # temporary media
    error: Mapped[str | None] = mapped_column(String(500))
