"""The material library (素材库): images and files kept in the database, articles, link
and mini-program cards, and keeping each in step with the platforms that send it.

Saving: `save_image` / `save_file` check an upload (images: bmp/png/jpeg/gif by their
magic bytes, at most 10 MB; files at most 20 MB); `save_article` / `save_card` check a
form's values and that a cover names an image of the workspace. Every save sets the
material's `sha256`: the hash of what a platform receives.

Platforms (called from jobs, never from the drain or a request): `ensure_oa_media`
(a permanent OA image: media_id and url), `ensure_oa_draft` (an article's draft: the
mpnews media_id mass sends send) and `ensure_wecom_media` (WeCom temporary media, made
again after REUPLOAD_AFTER since WeCom forgets it after 3 days, or when a send met 40007),
`ensure_wecom_image_url` (media/uploadimg). Each records the upload (status "uploading",
the hash) and commits before its call, then its answer: a finished upload of the same
hash is reused, so a retried job uploads nothing twice. A crash in the middle of a call
leaves "uploading"; the next caller uploads again (the platform may then hold one unused
copy: permanent materials have no client-side key to look up). A draft is made again
only when the article (or its cover) changed, and the old draft is deleted after the new
one is recorded, so a mass send never names a deleted draft that was not replaced.

Sending: `attachments_for` turns material ids into add_msg_template attachments (group
sends, journeys); `oa_message_for` into a customer-service message; `prepare_push_content`
resolves a push's library item to the media_id its send needs.
"""

import hashlib
import html
import io
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, validate
from PIL import Image, UnidentifiedImageError
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from core.references import MATERIAL, Reference, check_references, declare, scoped_get
from core.text import N_
from models import (
    Channel,
    Material,
    MaterialKind,
    MaterialUpload,
    UploadPurpose,
    UploadStatus,
    utcnow,
)
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

MB = 1024 * 1024
IMAGE_MAX_BYTES = 10 * MB
FILE_MAX_BYTES = 20 * MB
MIN_BYTES = 5  # both platforms refuse anything smaller
MAX_NAME = 100
MAX_TITLE = 64
MAX_AUTHOR = 16
MAX_DIGEST = 120
MAX_BODY = 20_000
MAX_URL = 1024
ATTACHMENTS_MAX = 9  # add_msg_template
# WeCom forgets temporary media after 3 days; made again a little before.
WECOM_MEDIA_LIFETIME = timedelta(days=3)
REUPLOAD_AFTER = timedelta(days=2, hours=12)
# An "uploading" record this old lost its worker: the upload is made again.
UPLOAD_STALE = timedelta(minutes=5)
INVALID_MEDIA_ID = 40007

IMAGE_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "gif": "image/gif", "bmp": "image/bmp"}
CARD_KINDS = (MaterialKind.ARTICLE, MaterialKind.LINK, MaterialKind.MINIPROGRAM)

TOO_BIG_IMAGE = N_("An image may be at most 10 MB.")
TOO_BIG_FILE = N_("A file may be at most 20 MB.")
TOO_SMALL = N_("The file is empty.")
NOT_AN_IMAGE = N_("Not a PNG, JPEG, GIF or BMP image.")
NOT_AN_IMAGE_MATERIAL = N_("Not an image of the library.")
NOT_THIS_KIND = N_("Not a library item of this kind.")
REQUIRED = N_("Required.")
NOT_A_LINK = N_("A web address starting with http:// or https://.")
NEEDS_A_LINK = N_("An article sent as a card needs its original link.")

REFERENCES = declare("material", Reference("cover_id", MATERIAL))


class MaterialError(Exception):
    """A material a send needs could not be had on the platform; `reason` is short, for a
    send's record, and the material keeps the platform's answer as its last error."""

    def __init__(self, reason: str, *, transient: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


# --- saving ------------------------------------------------------------------------


def image_type(data: bytes) -> str | None:
    """png, jpeg, gif or bmp by the bytes' magic number (never the file's name)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    return None


def _check_size(data: bytes, limit: int, too_big: str) -> None:
    if len(data) < MIN_BYTES:
        raise ValidationError({"file": [TOO_SMALL]})
    if len(data) > limit:
        raise ValidationError({"file": [too_big]})


def _name(name: str, filename: str) -> str:
    name = (name or "").strip() or (filename or "").strip()
    if not name:
        raise ValidationError({"name": [REQUIRED]})
    return name[:MAX_NAME]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_image(
    session: Session,
    workspace_id: int,
    *,
    name: str,
    filename: str,
    data: bytes,
    created_by: int | None = None,
) -> Material:
    """A new image (flushed): bmp/png/jpeg/gif up to 10 MB, its size read by Pillow.
    Raises a ValidationError keyed "file" or "name"."""
    _check_size(data, IMAGE_MAX_BYTES, TOO_BIG_IMAGE)
    kind = image_type(data)
    if kind is None:
        raise ValidationError({"file": [NOT_AN_IMAGE]})
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise ValidationError({"file": [NOT_AN_IMAGE]}) from None
    material = Material(
        workspace_id=workspace_id,
        kind=MaterialKind.IMAGE,
        name=_name(name, filename),
        data=data,
        filename=(filename or f"image.{kind}")[:200],
        mime=IMAGE_TYPES[kind],
        size=len(data),
        width=width,
        height=height,
        sha256=_digest(data),
        created_by=created_by,
    )
    session.add(material)
    session.flush()
    return material


def save_file(
    session: Session,
    workspace_id: int,
    *,
    name: str,
    filename: str,
    data: bytes,
    mime: str = "",
    created_by: int | None = None,
) -> Material:
    """A new file (flushed), up to 20 MB. Raises a ValidationError keyed "file" or "name"."""
    _check_size(data, FILE_MAX_BYTES, TOO_BIG_FILE)
    material = Material(
        workspace_id=workspace_id,
        kind=MaterialKind.FILE,
        name=_name(name, filename),
        data=data,
        filename=(filename or "file")[:200],
        mime=(mime or "application/octet-stream")[:100],
        size=len(data),
        sha256=_digest(data),
        created_by=created_by,
    )
    session.add(material)
    session.flush()
    return material


def _web_address(value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", value):
        raise ValidationError(NOT_A_LINK)


def _text(low: int, high: int, error: str, **kwargs) -> fields.String:
    return fields.String(
        validate=validate.Length(low, high, error=error),
        error_messages={"required": REQUIRED, "null": REQUIRED},
        **kwargs,
    )


def _link(**kwargs) -> fields.String:
    return fields.String(
        validate=[validate.Length(max=MAX_URL, error=N_("At most 1024 characters.")), _web_address],
        error_messages={"required": REQUIRED, "null": REQUIRED},
        **kwargs,
    )


class _CardSchema(Schema):
    name = _text(1, MAX_NAME, N_("1 to 100 characters."), required=True)
    title = _text(1, MAX_TITLE, N_("1 to 64 characters."), required=True)
    cover_id = fields.Integer(load_default=None, allow_none=True)


class ArticleSchema(_CardSchema):
    author = _text(0, MAX_AUTHOR, N_("At most 16 characters."), load_default="")
    digest = _text(0, MAX_DIGEST, N_("At most 120 characters."), load_default="")
    body = _text(1, MAX_BODY, N_("1 to 20000 characters."), required=True)
    url = _link(load_default=None)


class LinkCardSchema(_CardSchema):
    digest = _text(0, MAX_DIGEST, N_("At most 120 characters."), load_default="")
    url = _link(required=True)


class MiniprogramSchema(_CardSchema):
    appid = fields.String(
        required=True,
        validate=validate.Regexp(r"^wx[0-9a-zA-Z]{6,30}$", error=N_("Not an AppID.")),
        error_messages={"required": REQUIRED, "null": REQUIRED},
    )
    page_path = _text(1, 256, N_("1 to 256 characters."), required=True)


CARD_SCHEMAS = {
    MaterialKind.ARTICLE: ArticleSchema,
    MaterialKind.LINK: LinkCardSchema,
    MaterialKind.MINIPROGRAM: MiniprogramSchema,
}
# A mini-program card and an article need a cover on the platforms; a link card may go bare.
COVER_REQUIRED = (MaterialKind.ARTICLE, MaterialKind.MINIPROGRAM)


def article_html(body: str) -> str:
    """The article's body as the HTML a draft carries: each paragraph escaped, nothing of
    the marketer's markup kept."""
    paragraphs = [part.strip() for part in body.replace("\r\n", "\n").split("\n\n")]
    return "".join(
        f"<p>{html.escape(part).replace(chr(10), '<br/>')}</p>" for part in paragraphs if part
    )


def save_card(
    session: Session,
    workspace_id: int,
    kind: str,
    raw: dict,
    material: Material | None = None,
    created_by: int | None = None,
) -> Material:
    """A new (or the changed) article, link card or mini-program card, flushed. Raises a
    ValidationError keyed like the form's fields."""
    if kind not in CARD_SCHEMAS:
        raise ValidationError({"kind": [NOT_THIS_KIND]})
    values = CARD_SCHEMAS[kind]().load(
        {k: v for k, v in raw.items() if v not in ("", None)}, unknown="exclude"
    )
    if values.get("cover_id") is None and kind in COVER_REQUIRED:
        raise ValidationError({"cover_id": [REQUIRED]})
    check_references(session, workspace_id, values, REFERENCES)
    cover = None
    if values.get("cover_id") is not None:
        cover = scoped_get(session, Material, values["cover_id"], workspace_id)
        if cover.kind != MaterialKind.IMAGE:
            raise ValidationError({"cover_id": [NOT_AN_IMAGE_MATERIAL]})
    if material is None:
        material = Material(workspace_id=workspace_id, kind=kind, created_by=created_by)
        session.add(material)
    material.name = values["name"]
    material.title = values["title"]
    material.cover_id = cover.id if cover else None
    material.author = values.get("author") or None
    material.digest = values.get("digest") or None
    material.url = values.get("url")
    material.appid = values.get("appid")
    material.page_path = values.get("page_path")
    material.body = values.get("body")
    material.content_html = article_html(values["body"]) if kind == MaterialKind.ARTICLE else None
    material.sha256 = card_hash(material, cover)
    material.updated_at = utcnow()
    session.flush()
    return material


def card_hash(material: Material, cover: Material | None) -> str:
    """What the platform receives of a card or article, its cover's bytes included."""
    fields_ = {
        key: getattr(material, key)
        for key in ("kind", "title", "author", "digest", "content_html", "url", "appid")
    }
    fields_["page_path"] = material.page_path
    fields_["cover"] = cover.sha256 if cover else None
    return _digest(json.dumps(fields_, sort_keys=True, ensure_ascii=False).encode())


def archive(material: Material) -> None:
    material.archived_at = utcnow()


# --- queries -----------------------------------------------------------------------


def materials_query(workspace_id: int, kind: str | None = None) -> Select:
    """The workspace's library, newest first (archived left out)."""
    query = select(Material).where(
        Material.workspace_id == workspace_id, Material.archived_at.is_(None)
    )
    if kind:
        query = query.where(Material.kind == kind)
    return query.order_by(Material.id.desc())


def choices(session: Session, workspace_id: int, kinds: tuple[str, ...]) -> list[Material]:
    return list(
        session.scalars(
            select(Material)
            .where(
                Material.workspace_id == workspace_id,
                Material.archived_at.is_(None),
                Material.kind.in_(kinds),
            )
            .order_by(Material.id.desc())
        )
    )


def uploads_of(session: Session, material: Material) -> list[MaterialUpload]:
    return list(
        session.scalars(
            select(MaterialUpload)
            .where(
                MaterialUpload.workspace_id == material.workspace_id,
                MaterialUpload.material_id == material.id,
            )
            .order_by(MaterialUpload.channel_id, MaterialUpload.purpose)
        )
    )


# --- keeping in step with the platforms --------------------------------------------


def _record(session: Session, material: Material, channel: Channel, purpose: str):
    """The upload row (locked on PostgreSQL while it is decided), made when missing."""
    row = session.scalar(
        select(MaterialUpload)
        .where(
            MaterialUpload.workspace_id == material.workspace_id,
            MaterialUpload.material_id == material.id,
            MaterialUpload.channel_id == channel.id,
            MaterialUpload.purpose == purpose,
        )
        .with_for_update()
    )
    if row is None:
        row = MaterialUpload(
            workspace_id=material.workspace_id,
            material_id=material.id,
            channel_id=channel.id,
            purpose=purpose,
            status=UploadStatus.UPLOADING,
            sha256="",
            started_at=utcnow(),
        )
        session.add(row)
        session.flush()
    return row


@dataclass(frozen=True)
class Answer:
    media_id: str | None
    url: str | None = None
    expires_at: datetime | None = None


def _ensure(
    session: Session,
    material: Material,
    channel: Channel,
    purpose: str,
    upload,
    *,
    fresh_after: datetime | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> MaterialUpload:
    """The finished upload of the material's current hash (uploaded after `fresh_after`),
    or a new one: recorded and committed before `upload()` is called, its answer after."""
    now = now or utcnow()
    if channel.workspace_id != material.workspace_id:
        raise MaterialError("the channel is not the material's workspace's")
    row = _record(session, material, channel, purpose)
    reusable = (
        row.status == UploadStatus.OK
        and row.sha256 == material.sha256
        and (fresh_after is None or (row.uploaded_at and row.uploaded_at > fresh_after))
    )
    if reusable and not force:
        session.commit()
        return row
    if row.status == UploadStatus.UPLOADING and row.sha256 and row.started_at > now - UPLOAD_STALE:
        session.commit()
        raise MaterialError("an upload of it is under way", transient=True)
    row.status, row.sha256, row.started_at, row.error = (
        UploadStatus.UPLOADING,
        material.sha256,
        now,
        None,
    )
    session.commit()  # recorded before the call
    try:
        answer = upload()
    except WeChatApiError as exc:
        row.status, row.error = UploadStatus.FAILED, str(exc)[:500]
        material.last_error, material.last_error_at = f"{channel.name}: {exc}"[:500], now
        session.commit()
        log.warning(
            "material %s to channel %s (%s) refused: %s", material.id, channel.id, purpose, exc
        )
        raise MaterialError(f"material_{exc.errcode}", transient=exc.errcode is None) from exc
    row.status, row.media_id, row.url = UploadStatus.OK, answer.media_id, answer.url
    row.uploaded_at, row.expires_at = now, answer.expires_at
    material.last_error = material.last_error_at = None
    session.commit()
    return row


def _file_part(material: Material) -> tuple[str, bytes, str]:
    return (material.filename or material.name, material.data, material.mime or "")


def ensure_oa_media(
    session: Session, material: Material, channel: Channel, client, *, force: bool = False
) -> MaterialUpload:
    """The image as a permanent material of the OA (material/add_material?type=image):
    its media_id (image messages, an article's cover) and url (a card's picture)."""
    if material.kind != MaterialKind.IMAGE:
        raise MaterialError("not an image")

    def upload() -> Answer:
        answer = client.material.add("image", _file_part(material))
        return Answer(answer["media_id"], answer.get("url"))

    return _ensure(session, material, channel, UploadPurpose.OA_IMAGE, upload, force=force)


def ensure_oa_draft(
    session: Session, article: Material, channel: Channel, client, *, force: bool = False
) -> MaterialUpload:
    """The article as a draft of the OA (draft/add): the media_id mass sends send as
    mpnews. Its cover goes first, as a permanent image. Made again only when the article
    (or its cover) changed; the draft it replaces is deleted afterwards."""
    if article.kind != MaterialKind.ARTICLE:
        raise MaterialError("not an article")
    cover = scoped_get(session, Material, article.cover_id, article.workspace_id)
    if cover is None:
        raise MaterialError("the article has no cover")
    thumb = ensure_oa_media(session, cover, channel, client)
    replaced = session.scalar(
        select(MaterialUpload.media_id).where(
            MaterialUpload.workspace_id == article.workspace_id,
            MaterialUpload.material_id == article.id,
            MaterialUpload.channel_id == channel.id,
            MaterialUpload.purpose == UploadPurpose.OA_DRAFT,
            MaterialUpload.status == UploadStatus.OK,
        )
    )

    def upload() -> Answer:
        answer = client.post(
            "draft/add",
            data={
                "articles": [
                    {
                        "title": article.title,
                        "author": article.author or "",
                        "digest": article.digest or "",
                        "content": article.content_html,
                        "content_source_url": article.url or "",
                        "thumb_media_id": thumb.media_id,
                        "need_open_comment": 0,
                        "only_fans_can_comment": 0,
                    }
                ]
            },
        )
        return Answer(answer["media_id"])

    row = _ensure(session, article, channel, UploadPurpose.OA_DRAFT, upload, force=force)
    if replaced and replaced != row.media_id:
        try:
            client.post("draft/delete", data={"media_id": replaced})
        except WeChatApiError as exc:  # already gone, or the platform busy: an unused draft
            log.info("old draft of material %s not deleted: %s", article.id, exc)
    return row


def ensure_wecom_media(
    session: Session,
    material: Material,
    channel: Channel,
    client,
    *,
    force: bool = False,
    now: datetime | None = None,
) -> MaterialUpload:
    """The image or file as WeCom temporary media (media/upload): uploaded again when older
    than REUPLOAD_AFTER (WeCom forgets it after 3 days) or when `force` (a send met 40007)."""
    if material.kind not in (MaterialKind.IMAGE, MaterialKind.FILE):
        raise MaterialError("neither an image nor a file")
    now = now or utcnow()
    media_type = "image" if material.kind == MaterialKind.IMAGE else "file"

    def upload() -> Answer:
        answer = client.media.upload(media_type, _file_part(material))
        return Answer(answer["media_id"], expires_at=now + WECOM_MEDIA_LIFETIME)

    return _ensure(
        session,
        material,
        channel,
        UploadPurpose.WECOM_MEDIA,
        upload,
        fresh_after=now - REUPLOAD_AFTER,
        force=force,
        now=now,
    )


def ensure_wecom_image_url(
    session: Session, material: Material, channel: Channel, client
) -> MaterialUpload:
    """The image at a lasting WeCom URL (media/uploadimg): a link card's picture."""
    if material.kind != MaterialKind.IMAGE:
        raise MaterialError("not an image")

    def upload() -> Answer:
        return Answer(None, client.media.upload_img(_file_part(material))["url"])

    return _ensure(session, material, channel, UploadPurpose.WECOM_IMAGE_URL, upload)


def _cover(session: Session, material: Material) -> Material | None:
    return scoped_get(session, Material, material.cover_id, material.workspace_id)


def upload_everywhere(session: Session, material: Material, channels, client_of) -> list[str]:
    """The material on every channel of the workspace that sends it, made again even when
    uploaded (a page's "upload now"); the errors, per channel (also kept on the material
    and its upload rows)."""
    errors = []
    for channel in channels:
        client = client_of(channel)
        try:
            if channel.kind == "oa":
                if material.kind == MaterialKind.IMAGE:
                    ensure_oa_media(session, material, channel, client, force=True)
                elif material.kind == MaterialKind.ARTICLE:
                    ensure_oa_draft(session, material, channel, client)
            elif material.kind in (MaterialKind.IMAGE, MaterialKind.FILE):
                ensure_wecom_media(session, material, channel, client, force=True)
            elif material.kind in CARD_KINDS and material.cover_id:
                cover = _cover(session, material)
                ensure_wecom_image_url(session, cover, channel, client)
                if material.kind == MaterialKind.MINIPROGRAM:
                    ensure_wecom_media(session, cover, channel, client)
        except MaterialError as exc:
            errors.append(f"{channel.name}: {exc.reason}")
    return errors


# --- sending -----------------------------------------------------------------------


def attachments_for(
    session: Session,
    workspace_id: int,
    channel: Channel,
    client,
    material_ids: list[int],
    *,
    force: bool = False,
) -> list[dict]:
    """add_msg_template attachments for library items, in order: an image or a file as
    temporary media, a link card (an article goes as a link to its original), a
    mini-program card with its cover as temporary media. `force` uploads the media again
    (after a send met 40007). Raises MaterialError when one cannot be had."""
    if channel.workspace_id != workspace_id:
        raise MaterialError("the corp is not the workspace's")
    rows = session.scalars(
        select(Material).where(
            Material.workspace_id == workspace_id, Material.id.in_(material_ids or [-1])
        )
    )
    held = {material.id: material for material in rows}
    attachments = []
    for material_id in material_ids[:ATTACHMENTS_MAX]:
        material = held.get(material_id)
        if material is None:
            raise MaterialError("material_missing")
        attachments.append(_attachment(session, material, channel, client, force))
    return attachments


def _attachment(session, material: Material, channel, client, force: bool) -> dict:
    match material.kind:
        case MaterialKind.IMAGE | MaterialKind.FILE:
            media_id = ensure_wecom_media(session, material, channel, client, force=force).media_id
            return {"msgtype": material.kind, material.kind: {"media_id": media_id}}
        case MaterialKind.MINIPROGRAM:
            cover = _cover(session, material)
            if cover is None:
                raise MaterialError("material_no_cover")
            pic = ensure_wecom_media(session, cover, channel, client, force=force).media_id
            return {
                "msgtype": "miniprogram",
                "miniprogram": {
                    "title": material.title,
                    "pic_media_id": pic,
                    "appid": material.appid,
                    "page": material.page_path,
                },
            }
    if not material.url:
        raise MaterialError("material_no_link")
    cover = _cover(session, material)
    link = {"title": material.title, "url": material.url, "desc": material.digest or ""}
    if cover is not None:
        link["picurl"] = ensure_wecom_image_url(session, cover, channel, client).url
    return {"msgtype": "link", "link": link}


def _oa_image(session: Session, material: Material, channel: Channel, client) -> MaterialUpload:
    """The image's permanent upload to the OA: made now with a client, else only one
    already finished (a MaterialError, transient, when there is none yet)."""
    if client is not None:
        return ensure_oa_media(session, material, channel, client)
    row = session.scalar(
        select(MaterialUpload).where(
            MaterialUpload.workspace_id == material.workspace_id,
            MaterialUpload.material_id == material.id,
            MaterialUpload.channel_id == channel.id,
            MaterialUpload.purpose == UploadPurpose.OA_IMAGE,
        )
    )
    if row is not None and row.status == UploadStatus.FAILED and row.sha256 == material.sha256:
        raise MaterialError(f"material_failed: {row.error}"[:120])
    if row is None or row.status != UploadStatus.OK or row.sha256 != material.sha256:
        raise MaterialError("material_not_uploaded", transient=True)
    return row


def oa_message_for(session: Session, material: Material, channel: Channel, client=None) -> dict:
    """A customer-service message body (without touser) for a library item: an image, a
    news link card (an article's or a link card's) or a mini-program card. With a client
    its images are uploaded when missing; without one, only finished uploads are used."""
    match material.kind:
        case MaterialKind.IMAGE:
            media_id = _oa_image(session, material, channel, client).media_id
            return {"msgtype": "image", "image": {"media_id": media_id}}
        case MaterialKind.MINIPROGRAM:
            cover = _cover(session, material)
            if cover is None:
                raise MaterialError("material_no_cover")
            return {
                "msgtype": "miniprogrampage",
                "miniprogrampage": {
                    "title": material.title,
                    "appid": material.appid,
                    "pagepath": material.page_path,
                    "thumb_media_id": _oa_image(session, cover, channel, client).media_id,
                },
            }
        case MaterialKind.ARTICLE | MaterialKind.LINK:
            if not material.url:
                raise MaterialError("material_no_link")
            cover = _cover(session, material)
            picurl = _oa_image(session, cover, channel, client).url if cover else ""
            article = {
                "title": material.title,
                "description": material.digest or "",
                "url": material.url,
                "picurl": picurl or "",
            }
            return {"msgtype": "news", "news": {"articles": [article]}}
    raise MaterialError("material_not_sendable")


# --- pushes ------------------------------------------------------------------------

PUSH_KINDS = {"news": MaterialKind.ARTICLE, "image": MaterialKind.IMAGE}


def check_push_material(session: Session, workspace_id: int, content: dict) -> dict:
    """The push content with its library item's card fields filled in (an article's title,
    digest and original link for the customer-service card); a ValidationError keyed
    "material_id" for an item not of the content's kind. The caller has checked that the
    id is the workspace's (pushes.REFERENCES)."""
    material_id = (content or {}).get("material_id")
    if material_id is None:
        return content
    material = scoped_get(session, Material, material_id, workspace_id)
    if material is None or material.archived_at is not None:
        raise ValidationError({"material_id": [NOT_THIS_KIND]})
    if material.kind != PUSH_KINDS.get(content["type"]):
        raise ValidationError({"material_id": [NOT_THIS_KIND]})
    if content["type"] != "news":
        return content
    filled = {**content, "title": material.title}
    if material.digest:
        filled["description"] = material.digest
    if material.url:
        filled["url"] = material.url
    if not filled.get("url"):
        raise ValidationError({"material_id": [NEEDS_A_LINK]})
    return filled


def prepare_push_content(session: Session, workspace_id: int, content: dict, channel, client):
    """The push content with the media_id its send needs: the article's draft (mpnews) or
    the image's permanent media_id, uploaded now when missing or changed. Raises
    MaterialError."""
    material_id = content.get("material_id")
    if material_id is None:
        return content
    material = scoped_get(session, Material, material_id, workspace_id)
    if material is None or material.kind != PUSH_KINDS.get(content["type"]):
        raise MaterialError("material_missing")
    if content["type"] == "image":
        return {**content, "media_id": ensure_oa_media(session, material, channel, client).media_id}
    draft = ensure_oa_draft(session, material, channel, client)
    cover = _cover(session, material)
    picurl = ensure_oa_media(session, cover, channel, client).url if cover else None
    return {**content, "media_id": draft.media_id, "picurl": picurl or content.get("picurl", "")}


def uploaded_push_content(session: Session, workspace_id: int, content: dict, channel_id: int):
    """The push content with the media_id of its library item's finished upload to the OA,
    without calling the platform (a preview from a page); None when it has none yet."""
    material_id = content.get("material_id")
    if material_id is None or content.get("media_id"):
        return content
    purpose = UploadPurpose.OA_DRAFT if content["type"] == "news" else UploadPurpose.OA_IMAGE
    media_id = session.scalar(
        select(MaterialUpload.media_id).where(
            MaterialUpload.workspace_id == workspace_id,
            MaterialUpload.material_id == material_id,
            MaterialUpload.channel_id == channel_id,
            MaterialUpload.purpose == purpose,
            MaterialUpload.status == UploadStatus.OK,
        )
    )
    return {**content, "media_id": media_id} if media_id else None
