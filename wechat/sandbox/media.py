"""Media on both platforms, served beside oa.py (/oa) and wecom.py (/wecom).

OA: permanent materials (`material/add_material?type=image|thumb|voice|video`,
`get_material`, `del_material`, `get_materialcount`), pictures for article bodies
(`media/uploadimg`), temporary media (`media/upload`, 3 days) and drafts (`draft/add`,
`get`, `delete`): a draft's media_id is what `mass/sendall` and `mass/send` send as
`mpnews` (oa.py asks `check_mass_media`). WeCom: temporary media (`media/upload?type=
image|voice|video|file`, 3 days) and `media/uploadimg` (a lasting URL); group sends and
welcomes ask `check_wecom_attachments`, which refuses an unknown or expired media_id.

Limits as WECHAT.md and the platforms' pages give them: OA images up to 10 MB
(bmp/png/jpeg/gif), thumbnails 64 KB JPEG, uploadimg 1 MB jpg/png; WeCom images 10 MB
(jpg/png), voice 2 MB, video 10 MB, files 20 MB, every file at least 5 bytes; uploadimg
2 MB. Types are judged by the bytes' magic numbers, as the platforms do, not by the
file's name. Errcodes: 40004 invalid media type, 40005 invalid file type, 40006 invalid
media size, 40009 invalid image size, 40007 invalid media_id (unknown, another account's,
or temporary media past its 3 days), 45003 title, 45004 digest and 45110 author too
long, 44004 empty content, 45002 content too long. All time is the sandbox clock.
"""

import secrets
from dataclasses import dataclass, field

from flask import Blueprint, Response, request

from wechat.sandbox.core import OA, WECOM, ApiError, Tenant, body, ok, sandbox

oa_bp = Blueprint("sandbox_oa_media", __name__, url_prefix="/oa")
wecom_bp = Blueprint("sandbox_wecom_media", __name__, url_prefix="/wecom")

MB = 1024 * 1024
TEMPORARY_SECONDS = 3 * 86400
MIN_FILE_BYTES = 5
OA_IMAGE_MAX = 10 * MB
OA_THUMB_MAX = 64 * 1024
OA_VOICE_MAX = 2 * MB
OA_VIDEO_MAX = 10 * MB
OA_UPLOADIMG_MAX = 1 * MB
WECOM_LIMITS = {"image": 10 * MB, "voice": 2 * MB, "video": 10 * MB, "file": 20 * MB}
WECOM_UPLOADIMG_MAX = 2 * MB
MAX_TITLE_CHARS = 64
MAX_AUTHOR_CHARS = 16
MAX_DIGEST_CHARS = 120
MAX_CONTENT_CHARS = 20_000
MAX_ARTICLES = 8
IMAGE_KINDS = ("png", "jpeg", "gif", "bmp")


def image_kind(data: bytes) -> str | None:
    """png, jpeg, gif or bmp by the magic number; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    return None


@dataclass
class Media:
    media_id: str
    type: str
    data: bytes
    created_at: float
    url: str = ""
    temporary: bool = False

    def live_at(self, now: float) -> bool:
        return not self.temporary or now < self.created_at + TEMPORARY_SECONDS


@dataclass
class Draft:
    media_id: str
    articles: list[dict]
    created_at: float


@dataclass
class MediaState:
    media: dict[str, Media] = field(default_factory=dict)
    drafts: dict[str, Draft] = field(default_factory=dict)
    image_urls: dict[str, bytes] = field(default_factory=dict)


def media_of(tenant: Tenant) -> MediaState:
    return tenant.data.setdefault(f"{tenant.kind}_media", MediaState())


def inspect(tenant: Tenant) -> dict:
    state = media_of(tenant)
    return {
        "media": {
            media_id: {
                "type": m.type,
                "size": len(m.data),
                "temporary": m.temporary,
                "created_at": m.created_at,
                "url": m.url,
            }
            for media_id, m in state.media.items()
        },
        "drafts": {media_id: d.articles for media_id, d in state.drafts.items()},
    }


def _oa_tenant() -> Tenant:
    tenant, _ = sandbox().authenticate(OA, request.args.get("access_token"))
    return tenant


def _wecom_tenant() -> Tenant:
    tenant, _ = sandbox().authenticate(WECOM, request.args.get("access_token"))
    return tenant


def _upload() -> bytes:
    """The multipart `media` part; 41005 when there is none (the platform's "media data
    missing")."""
    upload = request.files.get("media")
    if upload is None:
        raise ApiError(41005, "media data missing")
    try:
        return upload.read()
    finally:  # a large part is spooled to a temporary file
        upload.close()


def _new_media_id() -> str:
    return secrets.token_urlsafe(48)[:64]


def _image_url(tenant: Tenant, data: bytes) -> str:
    name = secrets.token_hex(16)
    media_of(tenant).image_urls[name] = data
    host = "mmbiz.qpic.cn" if tenant.kind == OA else "wework.qpic.cn"
    return f"https://{host}/sandbox/{tenant.app_id}/{name}/0"


def _check_image(data: bytes, limit: int, kinds=IMAGE_KINDS) -> None:
    if image_kind(data) not in kinds:
        raise ApiError(40005, "invalid file type")
    if len(data) > limit:
        raise ApiError(40009, "invalid image size")


# --- OA ---------------------------------------------------------------------------


def _check_oa_media(media_type: str, data: bytes) -> None:
    if len(data) < MIN_FILE_BYTES:
        raise ApiError(40006, "invalid meida size")
    match media_type:
        case "image":
            _check_image(data, OA_IMAGE_MAX)
        case "thumb":
            _check_image(data, OA_THUMB_MAX, ("jpeg",))
        case "voice":
            if len(data) > OA_VOICE_MAX:
                raise ApiError(40006, "invalid meida size")
        case "video":
            if len(data) > OA_VIDEO_MAX:
                raise ApiError(40006, "invalid meida size")
        case _:
            raise ApiError(40004, "invalid media type")


@oa_bp.post("/cgi-bin/material/add_material")
def add_material():
    """material/add_material?type=image|thumb|voice|video: a permanent material; an image's
    answer carries its URL too."""
    tenant = _oa_tenant()
    media_type = request.args.get("type", "")
    data = _upload()
    _check_oa_media(media_type, data)
    with sandbox().lock:
        media = Media(_new_media_id(), media_type, data, sandbox().now())
        if media_type == "image":
            media.url = _image_url(tenant, data)
        media_of(tenant).media[media.media_id] = media
    answer = {"media_id": media.media_id}
    if media.url:
        answer["url"] = media.url
    return ok(**answer)


def _permanent(tenant: Tenant, media_id) -> Media:
    media = media_of(tenant).media.get(str(media_id or ""))
    if media is None or media.temporary:
        raise ApiError(40007, "invalid media_id")
    return media


@oa_bp.post("/cgi-bin/material/get_material")
def get_material():
    """material/get_material {"media_id"}: the material's bytes."""
    tenant = _oa_tenant()
    data = body()
    with sandbox().lock:
        media = _permanent(tenant, data.get("media_id"))
        return Response(media.data, mimetype="application/octet-stream")


@oa_bp.post("/cgi-bin/material/del_material")
def del_material():
    tenant = _oa_tenant()
    data = body()
    with sandbox().lock:
        media = _permanent(tenant, data.get("media_id"))
        del media_of(tenant).media[media.media_id]
    return ok()


@oa_bp.get("/cgi-bin/material/get_materialcount")
def get_materialcount():
    tenant = _oa_tenant()
    with sandbox().lock:
        held = [m for m in media_of(tenant).media.values() if not m.temporary]
        counts = {f"{kind}_count": sum(m.type == kind for m in held) for kind in ("voice", "video")}
        counts["image_count"] = sum(m.type in ("image", "thumb") for m in held)
        counts["news_count"] = len(media_of(tenant).drafts)
    return ok(**counts)


@oa_bp.post("/cgi-bin/media/uploadimg")
def oa_uploadimg():
    """media/uploadimg: a picture for an article's body (jpg/png, 1 MB): its URL."""
    tenant = _oa_tenant()
    data = _upload()
    _check_image(data, OA_UPLOADIMG_MAX, ("jpeg", "png"))
    with sandbox().lock:
        return ok(url=_image_url(tenant, data))


@oa_bp.post("/cgi-bin/media/upload")
def oa_upload_temporary():
    """media/upload?type=image|voice|video|thumb: temporary media, 3 days."""
    tenant = _oa_tenant()
    media_type = request.args.get("type", "")
    data = _upload()
    _check_oa_media(media_type, data)
    with sandbox().lock:
        media = Media(_new_media_id(), media_type, data, sandbox().now(), temporary=True)
        media_of(tenant).media[media.media_id] = media
    return ok(type=media_type, media_id=media.media_id, created_at=int(media.created_at))


def _check_article(tenant: Tenant, article) -> dict:
    if not isinstance(article, dict):
        raise ApiError(47001, "data format error")
    title = str(article.get("title") or "")
    if not title or len(title) > MAX_TITLE_CHARS:
        raise ApiError(45003, "title size out of limit")
    if len(str(article.get("author") or "")) > MAX_AUTHOR_CHARS:
        raise ApiError(45110, "author size out of limit")
    if len(str(article.get("digest") or "")) > MAX_DIGEST_CHARS:
        raise ApiError(45004, "description size out of limit")
    content = str(article.get("content") or "")
    if not content:
        raise ApiError(44004, "empty content")
    if len(content) > MAX_CONTENT_CHARS:
        raise ApiError(45002, "content size out of limit")
    _permanent(tenant, article.get("thumb_media_id"))
    return {
        key: article.get(key, "")
        for key in ("title", "author", "digest", "content", "content_source_url", "thumb_media_id")
    }


@oa_bp.post("/cgi-bin/draft/add")
def draft_add():
    """draft/add {"articles": [...]}: a draft whose media_id mass sends send as mpnews. The
    cover (thumb_media_id) must be a permanent material of this OA."""
    tenant = _oa_tenant()
    articles = body().get("articles")
    if not isinstance(articles, list) or not articles or len(articles) > MAX_ARTICLES:
        raise ApiError(47001, "data format error")
    with sandbox().lock:
        checked = [_check_article(tenant, article) for article in articles]
        draft = Draft(_new_media_id(), checked, sandbox().now())
        media_of(tenant).drafts[draft.media_id] = draft
    return ok(media_id=draft.media_id)


def _draft(tenant: Tenant, media_id) -> Draft:
    draft = media_of(tenant).drafts.get(str(media_id or ""))
    if draft is None:
        raise ApiError(40007, "invalid media_id")
    return draft


@oa_bp.post("/cgi-bin/draft/get")
def draft_get():
    tenant = _oa_tenant()
    data = body()
    with sandbox().lock:
        return ok(news_item=_draft(tenant, data.get("media_id")).articles)


@oa_bp.post("/cgi-bin/draft/delete")
def draft_delete():
    tenant = _oa_tenant()
    data = body()
    with sandbox().lock:
        del media_of(tenant).drafts[_draft(tenant, data.get("media_id")).media_id]
    return ok()


def check_mass_media(tenant: Tenant, msgtype: str, content: dict) -> None:
    """A mass send's mpnews must name a draft of this OA (40007 otherwise). Call under
    the sandbox lock."""
    if msgtype == "mpnews":
        _draft(tenant, content.get("media_id"))


# --- WeCom ------------------------------------------------------------------------


@wecom_bp.post("/cgi-bin/media/upload")
def wecom_upload():
    """media/upload?type=image|voice|video|file: temporary media, valid 3 days."""
    tenant = _wecom_tenant()
    media_type = request.args.get("type", "")
    if media_type not in WECOM_LIMITS:
        raise ApiError(40004, "invalid media type")
    data = _upload()
    if len(data) < MIN_FILE_BYTES or len(data) > WECOM_LIMITS[media_type]:
        raise ApiError(40006, "invalid file size")
    if media_type == "image" and image_kind(data) not in ("jpeg", "png"):
        raise ApiError(40005, "invalid file type")
    with sandbox().lock:
        media = Media(_new_media_id(), media_type, data, sandbox().now(), temporary=True)
        media_of(tenant).media[media.media_id] = media
    return ok(type=media_type, media_id=media.media_id, created_at=str(int(media.created_at)))


@wecom_bp.post("/cgi-bin/media/uploadimg")
def wecom_uploadimg():
    """media/uploadimg: a lasting image URL (jpg/png, 2 MB)."""
    tenant = _wecom_tenant()
    data = _upload()
    _check_image(data, WECOM_UPLOADIMG_MAX, ("jpeg", "png"))
    with sandbox().lock:
        return ok(url=_image_url(tenant, data))


ATTACHMENT_MEDIA = {
    "image": ("media_id", "image"),
    "video": ("media_id", "video"),
    "file": ("media_id", "file"),
    "miniprogram": ("pic_media_id", "image"),
}


def check_wecom_attachments(tenant: Tenant, attachments: list) -> None:
    """Each attachment of a group send or welcome well formed, its media known to the corp,
    of the right type and not past its 3 days (40007). Call under the sandbox lock."""
    now = sandbox().now()
    for attachment in attachments:
        msgtype = attachment.get("msgtype") if isinstance(attachment, dict) else None
        content = attachment.get(msgtype) if msgtype else None
        if not isinstance(content, dict):
            raise ApiError(40008, "invalid message type")
        if msgtype == "link":
            if not content.get("title") or not content.get("url"):
                raise ApiError(41008, "missing link title or url")
            continue
        if msgtype == "image" and content.get("pic_url") and not content.get("media_id"):
            continue
        if msgtype not in ATTACHMENT_MEDIA:
            raise ApiError(40008, "invalid message type")
        key, media_type = ATTACHMENT_MEDIA[msgtype]
        if msgtype == "miniprogram" and not (content.get("appid") and content.get("page")):
            raise ApiError(40008, "miniprogram needs appid and page")
        media = media_of(tenant).media.get(str(content.get(key) or ""))
        if media is None or not media.live_at(now) or media.type != media_type:
            raise ApiError(40007, "invalid media_id")
