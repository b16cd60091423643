"""Posters (海报): a marketer's background image with each person's own QR code on it.

A poster's QR code encodes, per person:
- for a content item or a form, that person's share link through the poster's tracked link
  (medium "qr"): `/t/<code>?s=<share token>` naming the salesperson (Staff) or the customer
  (contact) who hands the poster out, so readers who scan it are attributed to them exactly
  as readers of their share links are (app/public.py records the sharer on the view);
- for a 联系我 code, nothing of ours: the poster carries WeCom's own picture of the
  salesperson's code (`ContactWay.qr_code` is the URL of that picture on WeCom's image
  host), fetched from that host only (sales/join_ways.qr_picture) with a timeout when the
  person's poster is composed, and scaled into the QR box; scanning it adds the
  salesperson, and the add carries the code's state like any other. When the picture
  cannot be had, `poster_png` raises CodePictureUnavailable and the pages show a poster
  saying so (`unavailable_png`), never a code that leads elsewhere.

`compose` is pure (bytes in, PNG bytes out). `poster_png` caches each person's render in
`poster_renders` for one version of the design, so a page that shows many people's posters
composes each once.
"""

import io
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import segno
from marshmallow import ValidationError
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.references import CONTENT, FORM, Reference, check_references, declare, scoped_get
from core.text import N_
from core.tokens import Sharer, Signer, share_token
from models import (
    ContactWay,
    Form,
    LinkMedium,
    Poster,
    PosterRender,
    PosterTarget,
    Staff,
    TrackedLink,
    utcnow,
)
from outreach.content import create_link, link_path
from outreach.library.editing import oa_channels
from sales.join_ways import qr_picture

log = logging.getLogger(__name__)

MAX_BACKGROUND_BYTES = 5 * 1024 * 1024
MAX_SIDE = 4000  # pixels: a bigger design is no phone poster (and bounds decompression)
MIN_SIDE = 200
MIN_QR_SIZE = 80
MAX_NAME = 100
MAX_TEXT = 100
MIN_TEXT_SIZE, MAX_TEXT_SIZE = 10, 200
QUIET_ZONE = 2  # modules of white around the code, as the channel QR codes have
# A cached render is composed again after this long: its share token ages (180 days).
RENDER_MAX_AGE = timedelta(days=30)
SAMPLE_NAME = "张三"

IMAGE_TYPES = {b"\x89PNG\r\n\x1a\n": ("image/png", "PNG"), b"\xff\xd8\xff": ("image/jpeg", "JPEG")}
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")

REQUIRED = N_("Required.")
NO_FILE = N_("Choose a PNG or JPEG image.")
TOO_BIG = N_("The image is larger than 5 MB.")
NOT_AN_IMAGE = N_("Not a PNG or JPEG image.")
UNREADABLE = N_("The image cannot be read: the file is damaged or not what it claims to be.")
BAD_SIDES = N_("The image must be from 200 to 4000 pixels wide and high.")
NAME_TOO_LONG = N_("At most 100 characters.")
TEXT_TOO_LONG = N_("At most 100 characters.")
NOT_A_NUMBER = N_("A whole number of pixels.")
QR_TOO_SMALL = N_("The QR code needs at least 80 pixels.")
QR_OUTSIDE = N_("The QR code's box must lie inside the image.")
TEXT_OUTSIDE = N_("The text must start inside the image.")
TEXT_SIZE_RANGE = N_("From 10 to 200 pixels.")
NOT_A_COLOR = N_("A colour like #333333.")
NOT_A_TARGET = N_("Choose what the QR code leads to.")
NO_CONTENT = N_("Choose a content item.")
NO_FORM = N_("Choose a form.")
UNAVAILABLE = N_("The QR code cannot be fetched from WeCom just now: refresh later.")

POSTER_REFERENCES = declare(
    "poster",
    Reference("content_id", CONTENT),
    Reference("form_id", FORM),
)


# ---- the background -----------------------------------------------------------------------


@dataclass(frozen=True)
class Background:
    data: bytes
    mime: str
    width: int
    height: int


def read_background(data: bytes) -> Background:
    """An uploaded design checked by its bytes (not its name or declared type): PNG or
    JPEG by magic bytes, readable as that format, at most 5 MB and a sensible size;
    else ValidationError({"background": [...]})."""

    def refuse(message: str):
        return ValidationError({"background": [message]})

    if not data:
        raise refuse(NO_FILE)
    if len(data) > MAX_BACKGROUND_BYTES:
        raise refuse(TOO_BIG)
    kind = next((kind for magic, kind in IMAGE_TYPES.items() if data.startswith(magic)), None)
    if kind is None:
        raise refuse(NOT_AN_IMAGE)
    mime, pillow_format = kind
    try:
        with Image.open(io.BytesIO(data), formats=[pillow_format]) as image:
            width, height = image.size
            if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
                raise refuse(BAD_SIDES)
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise refuse(UNREADABLE) from None
    return Background(data, mime, width, height)


# ---- the form's values --------------------------------------------------------------------


def poster_form(poster: Poster | None = None) -> dict:
    """The editor's inputs (strings) for a poster, or a new one's defaults."""
    if poster is None:
        return {
            "name": "",
            "target": PosterTarget.CONTENT.value,
            "content_id": "",
            "form_id": "",
            "qr_x": "",
            "qr_y": "",
            "qr_size": "240",
            "text": "{name} 邀请您",
            "text_x": "",
            "text_y": "",
            "text_size": "36",
            "text_color": "#333333",
        }
    return {
        "name": poster.name,
        "target": poster.target,
        "content_id": str(poster.content_id or ""),
        "form_id": str(poster.form_id or ""),
        "qr_x": str(poster.qr_x),
        "qr_y": str(poster.qr_y),
        "qr_size": str(poster.qr_size),
        "text": poster.text,
        "text_x": str(poster.text_x),
        "text_y": str(poster.text_y),
        "text_size": str(poster.text_size),
        "text_color": poster.text_color,
    }


def default_layout(values: dict, width: int, height: int) -> dict:
    """Empty positions placed where most designs leave room: the QR code centred near the
    bottom, the text above it."""
    size = _number(values.get("qr_size")) or min(240, width // 3)
    size = max(MIN_QR_SIZE, min(size, width, height))
    filled = dict(values)
    filled["qr_size"] = str(size)
    if not str(values.get("qr_x", "")).strip():
        filled["qr_x"] = str((width - size) // 2)
    if not str(values.get("qr_y", "")).strip():
        filled["qr_y"] = str(max(0, height - size - height // 12))
    if not str(values.get("text_x", "")).strip():
        filled["text_x"] = str(width // 10)
    if not str(values.get("text_y", "")).strip():
        filled["text_y"] = str(
            max(0, int(filled["qr_y"]) - 2 * (_number(values.get("text_size")) or 36))
        )
    return filled


def _number(value) -> int | None:
    text = str(value if value is not None else "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else None


def load_poster(values: dict, width: int, height: int) -> dict:
    """The editor's inputs checked against the image they lay out: typed values, or a
    ValidationError keyed by input."""
    errors: dict[str, list[str]] = {}
    checked: dict = {}
    name = str(values.get("name") or "").strip()
    if not name:
        errors["name"] = [REQUIRED]
    elif len(name) > MAX_NAME:
        errors["name"] = [NAME_TOO_LONG]
    checked["name"] = name
    target = values.get("target")
    if target not in set(PosterTarget):
        errors["target"] = [NOT_A_TARGET]
    checked["target"] = target
    checked["content_id"] = checked["form_id"] = None
    if target == PosterTarget.CONTENT:
        checked["content_id"] = _number(values.get("content_id"))
        if checked["content_id"] is None:
            errors["content_id"] = [NO_CONTENT]
    elif target == PosterTarget.FORM:
        checked["form_id"] = _number(values.get("form_id"))
        if checked["form_id"] is None:
            errors["form_id"] = [NO_FORM]
    for key in ("qr_x", "qr_y", "qr_size", "text_x", "text_y", "text_size"):
        checked[key] = _number(values.get(key))
        if checked[key] is None:
            errors[key] = [NOT_A_NUMBER]
    x, y, size = checked["qr_x"], checked["qr_y"], checked["qr_size"]
    if size is not None and size < MIN_QR_SIZE:
        errors["qr_size"] = [QR_TOO_SMALL]
    elif None not in (x, y, size) and (x + size > width or y + size > height):
        errors.setdefault("qr_size", []).append(QR_OUTSIDE)
    text = str(values.get("text") or "").strip()
    if len(text) > MAX_TEXT:
        errors["text"] = [TEXT_TOO_LONG]
    checked["text"] = text
    text_x, text_y, text_size = checked["text_x"], checked["text_y"], checked["text_size"]
    if text_size is not None and not MIN_TEXT_SIZE <= text_size <= MAX_TEXT_SIZE:
        errors["text_size"] = [TEXT_SIZE_RANGE]
    if text and None not in (text_x, text_y) and (text_x >= width or text_y >= height):
        errors.setdefault("text_x", []).append(TEXT_OUTSIDE)
    color = str(values.get("text_color") or "").strip()
    if not COLOR.match(color):
        errors["text_color"] = [NOT_A_COLOR]
    checked["text_color"] = color.lower()
    if errors:
        raise ValidationError(errors)
    return checked


# ---- saving -------------------------------------------------------------------------------


def save_poster(
    session: Session,
    workspace_id: int,
    checked: dict,
    *,
    background: Background | None,
    user_id: int | None,
    poster: Poster | None = None,
) -> Poster:
    """A new poster (with its background) or an edit (a new background optional). The
    content or form it names must be the workspace's (ValidationError keyed by input); a
    new target gets its own tracked link (medium "qr"), so its views count as the poster's.
    Every save is a new version: people's cached renders are composed again."""
    check_references(session, workspace_id, checked, POSTER_REFERENCES)
    if poster is None:
        if background is None:
            raise ValidationError({"background": [NO_FILE]})
        poster = Poster(workspace_id=workspace_id, created_by=user_id, version=0)
        session.add(poster)
    if background is not None:
        poster.background = background.data
        poster.background_type = background.mime
        poster.width, poster.height = background.width, background.height
    target_changed = (poster.target, poster.content_id, poster.form_id) != (
        checked["target"],
        checked["content_id"],
        checked["form_id"],
    )
    for key, value in checked.items():
        setattr(poster, key, value)
    if checked["target"] == PosterTarget.CONTACT_WAY:
        poster.link_id = None
    elif target_changed or poster.link_id is None:
        channels = oa_channels(session, workspace_id)
        link = create_link(
            session,
            workspace_id,
            content_id=checked["content_id"],
            form_id=checked["form_id"],
            channel_id=channels[0].id if channels else None,
            medium=LinkMedium.QR,
            label=f"海报 {checked['name']}"[:100],
            created_by=user_id,
        )
        poster.link_id = link.id
    poster.version = (poster.version or 0) + 1
    poster.updated_at = utcnow()
    session.flush()
    return poster


def live_forms(session: Session, workspace_id: int) -> list[Form]:
    """The workspace's forms that are not archived, newest first (a poster's choices)."""
    return list(
        session.scalars(
            select(Form)
            .where(Form.workspace_id == workspace_id, Form.archived_at.is_(None))
            .order_by(Form.created_at.desc(), Form.id.desc())
        )
    )


def posters_of(session: Session, workspace_id: int, *, archived: bool = False) -> list[Poster]:
    archived_now = Poster.archived_at.is_not(None) if archived else Poster.archived_at.is_(None)
    return list(
        session.scalars(
            select(Poster)
            .where(Poster.workspace_id == workspace_id, archived_now)
            .order_by(Poster.created_at.desc(), Poster.id.desc())
        )
    )


# ---- composing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    qr_x: int
    qr_y: int
    qr_size: int
    text: str = ""
    text_x: int = 0
    text_y: int = 0
    text_size: int = 36
    text_color: str = "#333333"

    @classmethod
    def of(cls, poster: Poster) -> "Layout":
        return cls(
            poster.qr_x,
            poster.qr_y,
            poster.qr_size,
            poster.text,
            poster.text_x,
            poster.text_y,
            poster.text_size,
            poster.text_color,
        )


def qr_image(url: str, size: int) -> Image.Image:
    """`url`'s QR code on a white square of `size` pixels: whole pixels per module (a
    blurred module misreads), centred, with a quiet zone of QUIET_ZONE modules at least."""
    code = segno.make(url, error="m")
    modules = code.symbol_size(border=QUIET_ZONE)[0]
    scale = max(1, size // modules)
    matrix = Image.new("1", (modules, modules), 1)
    matrix.putdata(
        [0 if dark else 1 for row in code.matrix_iter(border=QUIET_ZONE) for dark in row]
    )
    drawn = matrix.resize((modules * scale, modules * scale), Image.Resampling.NEAREST)
    square = Image.new("RGB", (size, size), "white")
    offset = (size - modules * scale) // 2
    square.paste(drawn.convert("RGB"), (offset, offset))
    return square


@lru_cache(maxsize=32)
def _font(path: str, size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    if Path(path).is_file():
        return ImageFont.truetype(path, size)
    log.warning(
        "poster font %s not found: Chinese text draws as boxes (set HARPOON_POSTER_FONT)", path
    )
    return ImageFont.load_default(size=size)


class CodePictureUnavailable(Exception):
    """WeCom's picture of the salesperson's 联系我 code could not be fetched or read."""


def picture_square(picture: Image.Image, size: int) -> Image.Image:
    """A QR code picture (WeCom's) scaled to fit a white square of `size` pixels, centred."""
    width, height = picture.size
    scale = size / max(width, height)
    fitted = picture.convert("RGB").resize(
        (max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.LANCZOS
    )
    square = Image.new("RGB", (size, size), "white")
    square.paste(fitted, ((size - fitted.width) // 2, (size - fitted.height) // 2))
    return square


def code_picture(url: str | None, sandbox_url: str = "") -> Image.Image:
    """WeCom's picture of a 联系我 code, fetched from WeCom's image host (or the configured
    sandbox) and read as PNG or JPEG; CodePictureUnavailable otherwise."""
    fetched = qr_picture(url, sandbox_url)
    if fetched is None:
        raise CodePictureUnavailable(url)
    try:
        with Image.open(io.BytesIO(fetched[0]), formats=["PNG", "JPEG"]) as opened:
            if max(opened.size) > MAX_SIDE:
                raise CodePictureUnavailable(url)
            return opened.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise CodePictureUnavailable(url) from None


def compose(
    background: bytes, code: str | Image.Image, layout: Layout, name: str, font_path: str
) -> bytes:
    """The background with the QR code in the layout's box (a URL's code drawn here, or a
    picture of WeCom's scaled in) and its text line ("{name}" filled in) drawn with the font
    at `font_path`; a PNG."""
    with Image.open(io.BytesIO(background)) as opened:
        image = opened.convert("RGB")
    if isinstance(code, str):
        square = qr_image(code, layout.qr_size)
    else:
        square = picture_square(code, layout.qr_size)
    image.paste(square, (layout.qr_x, layout.qr_y))
    if layout.text:
        line = layout.text.replace("{name}", name or "")
        ImageDraw.Draw(image).text(
            (layout.text_x, layout.text_y),
            line,
            fill=layout.text_color,
            font=_font(font_path, layout.text_size),
        )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


# ---- people -------------------------------------------------------------------------------


class PersonKind:
    STAFF = "staff"
    CONTACT = "contact"


@dataclass(frozen=True)
class PosterPerson:
    """Whose poster: a salesperson (a Staff row) or a customer who advocates (a contact)."""

    kind: str
    id: int
    name: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"

    def sharer(self, workspace_id: int) -> Sharer:
        if self.kind == PersonKind.STAFF:
            return Sharer(workspace_id, staff_id=self.id)
        return Sharer(workspace_id, contact_id=self.id)


def staff_person(staff: Staff) -> PosterPerson:
    return PosterPerson(PersonKind.STAFF, staff.id, staff.name or staff.userid)


def own_contact_way(session: Session, staff: Staff) -> ContactWay | None:
    """The salesperson's own 联系我 code: the newest live one that reaches them alone."""
    ways = session.scalars(
        select(ContactWay)
        .where(
            ContactWay.workspace_id == staff.workspace_id,
            ContactWay.channel_id == staff.channel_id,
            ContactWay.deleted_at.is_(None),
            ContactWay.qr_code.is_not(None),
        )
        .order_by(ContactWay.created_at.desc(), ContactWay.id.desc())
    )
    return next((way for way in ways if way.staff_userids == [staff.userid]), None)


def usable_by(session: Session, poster: Poster, staff: Staff) -> bool:
    """Whether the salesperson has a QR code for this poster (a 联系我 poster needs their
    own code)."""
    if poster.target != PosterTarget.CONTACT_WAY:
        return poster.link_id is not None
    return own_contact_way(session, staff) is not None


def personal_way(session: Session, poster: Poster, person: PosterPerson) -> ContactWay | None:
    """The 联系我 code whose picture a 联系我 poster carries for the person: a salesperson's
    own; None for a customer or a salesperson without one."""
    if person.kind != PersonKind.STAFF:
        return None
    staff = scoped_get(session, Staff, person.id, poster.workspace_id)
    return own_contact_way(session, staff) if staff is not None else None


def personal_url(
    session: Session, poster: Poster, person: PosterPerson, *, signer: Signer, base_url: str
) -> str | None:
    """What the person's QR code encodes on a content or form poster (their share link);
    None on a 联系我 poster (it carries WeCom's picture, see personal_way)."""
    ws = poster.workspace_id
    if poster.target == PosterTarget.CONTACT_WAY:
        return None
    link = scoped_get(session, TrackedLink, poster.link_id, ws)
    if link is None:
        return None
    return f"{base_url}{link_path(link)}?s={share_token(signer, person.sharer(ws))}"


def poster_png(
    session: Session,
    poster: Poster,
    person: PosterPerson,
    *,
    signer: Signer,
    base_url: str,
    font_path: str,
    sandbox_url: str = "",
    now: datetime | None = None,
) -> bytes | None:
    """The person's poster, from the cache when this version was composed for them within
    RENDER_MAX_AGE, else composed and cached (the caller commits); None when they have no
    QR code to put on it. On a 联系我 poster WeCom's picture of their code is fetched for
    the composition (so once per person and version): CodePictureUnavailable when it cannot
    be had (nothing is cached, the next request tries again)."""
    now = now or utcnow()
    cached = session.scalar(
        select(PosterRender).where(
            PosterRender.workspace_id == poster.workspace_id,
            PosterRender.poster_id == poster.id,
            PosterRender.person == person.key,
            PosterRender.version == poster.version,
        )
    )
    if cached is not None and cached.rendered_at > now - RENDER_MAX_AGE:
        return cached.png
    code: str | Image.Image | None
    if poster.target == PosterTarget.CONTACT_WAY:
        way = personal_way(session, poster, person)
        code = code_picture(way.qr_code, sandbox_url) if way is not None else None
    else:
        code = personal_url(session, poster, person, signer=signer, base_url=base_url)
    if code is None:
        return None
    png = compose(poster.background, code, Layout.of(poster), person.name, font_path)
    try:
        with session.begin_nested():
            session.execute(
                delete(PosterRender).where(
                    PosterRender.workspace_id == poster.workspace_id,
                    PosterRender.poster_id == poster.id,
                    PosterRender.person == person.key,
                )
            )
            session.add(
                PosterRender(
                    workspace_id=poster.workspace_id,
                    poster_id=poster.id,
                    person=person.key,
                    version=poster.version,
                    png=png,
                    rendered_at=now,
                )
            )
    except IntegrityError:  # another request cached it at the same moment: theirs is as good
        pass
    return png


def preview_png(poster: Poster, layout: Layout, *, base_url: str, font_path: str) -> bytes:
    """The design with a sample person's QR code (a link of the same length as a real
    share link, so the code's density is the real one) for the editor."""
    sample = f"{base_url}/t/PREVIEW0?s={'x' * 100}"
    return compose(poster.background, sample, layout, SAMPLE_NAME, font_path)


def unavailable_png(poster: Poster, message: str, font_path: str) -> bytes:
    """The design with the QR box left white and `message` (UNAVAILABLE, translated) in it:
    what the pages show while WeCom's picture of a 联系我 code cannot be had."""
    layout = Layout.of(poster)
    with Image.open(io.BytesIO(poster.background)) as opened:
        image = opened.convert("RGB")
    box = (layout.qr_x, layout.qr_y, layout.qr_x + layout.qr_size, layout.qr_y + layout.qr_size)
    draw = ImageDraw.Draw(image)
    draw.rectangle(box, fill="white", outline="#cc0000", width=2)
    size = max(10, layout.qr_size // 12)
    font = _font(font_path, size)
    half = (len(message) + 1) // 2
    for index, line in enumerate((message[:half], message[half:])):
        draw.text(
            (
                layout.qr_x + size // 2,
                layout.qr_y + layout.qr_size // 2 - size + index * size * 3 // 2,
            ),
            line,
            fill="#cc0000",
            font=font,
        )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
