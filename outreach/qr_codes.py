"""Channel QR codes: parametric OA codes (qrcode/create) handed out on posters, booths and
webinars. Every follow through a code (EventKey qrscene_<scene>) and every scan of it by
a follower (EventKey <scene>) carries its scene, so the code's tags, its welcome reply
(outreach.qr_scans) and its statistics follow the scene.

The QrCode row is written only after WeChat issued the ticket. A scene is unique per
channel, expired and archived codes included, so a scene always names one code and its
history. WeChat cannot revoke a code: archiving only hides it from the list.
No Flask here; the admin page translates the messages (marked N_).
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema
from sqlalchemy import bindparam, case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.references import (
    NOT_WORKSPACE_TAGS,
    TAG,
    Reference,
    declare,
    unknown_references,
)
from core.text import N_
from crm.rule_config import MAX_REPLY
from models import Channel, ChannelKind, Interaction, QrCode, utcnow
from models.interaction import SCAN_KINDS

MAX_NAME = QrCode.__table__.c.name.type.length
MAX_SCENE_CHARS = QrCode.__table__.c.scene.type.length  # WeChat's limit too: 64
MAX_PERMANENT_SCENE = 100_000  # QR_LIMIT_SCENE
MAX_TEMPORARY_SCENE = 2**32 - 1  # QR_SCENE: a 32-bit unsigned scene_id
MIN_EXPIRE_SECONDS = 60
MAX_EXPIRE_SECONDS = 2_592_000  # 30 days
# WeChat shows a ticket's image here (the QR content itself is the ticket's `url`).
SHOW_QR_URL = "https://mp.weixin.qq.com/cgi-bin/showqrcode"

REQUIRED = N_("Required.")
NAME_TOO_LONG = N_("At most 100 characters.")
SCENE_NOT_SCENE = N_("A whole number or a text.")
SCENE_TEXT_LENGTH = N_("A text scene has 1 to 64 characters.")
PERMANENT_SCENE_RANGE = N_("A permanent code's number is 1 to 100000.")
TEMPORARY_SCENE_RANGE = N_("A temporary code's number is 1 to 4294967295.")
SCENE_TAKEN = N_(
    "Another code of this channel uses this scene (expired and archived codes keep theirs)."
)
NO_FREE_SCENE = N_("Every permanent number of this channel is taken: use a text scene.")
EXPIRY_REQUIRED = N_("A temporary code needs its validity.")
EXPIRY_RANGE = N_("A temporary code is valid from 60 seconds to 30 days.")
PERMANENT_NO_EXPIRY = N_("A permanent code does not expire.")
REFERENCES = declare("qr_code", Reference("tag_ids", TAG, NOT_WORKSPACE_TAGS))
REPLY_TOO_LONG = N_("At most 600 characters.")


class QrStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"  # a temporary code past its expiry: WeChat no longer answers it
    ARCHIVED = "archived"  # hidden from the list; scans of it still count


def status_of(code: QrCode, now: datetime | None = None) -> QrStatus:
    if code.archived:
        return QrStatus.ARCHIVED
    if code.expires_at is not None and code.expires_at <= (now or utcnow()):
        return QrStatus.EXPIRED
    return QrStatus.ACTIVE


def ticket_url(code: QrCode) -> str:
    """WeChat's image of the code (needs the internet; the admin draws its own)."""
    return f"{SHOW_QR_URL}?{urlencode({'ticket': code.ticket})}"


# ---- input ------------------------------------------------------------------------------


class Text(fields.String):
    """A string with its surrounding spaces dropped (values pasted into forms carry them)."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


class Scene(fields.Field):
    """An int is a number scene (QR_SCENE / QR_LIMIT_SCENE); a str a text scene
    (QR_STR_SCENE / QR_LIMIT_STR_SCENE)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValidationError(SCENE_NOT_SCENE)
        return value.strip() if isinstance(value, str) else value


def _not_blank(value: str) -> None:
    if not value:
        raise ValidationError(REQUIRED)


class QrCodeChanges(Schema):
    """What Harpoon alone keeps of a code, so an edit changes it without asking WeChat."""

    name = Text(
        required=True,
        validate=[_not_blank, validate.Length(max=MAX_NAME, error=NAME_TOO_LONG)],
        error_messages={"required": REQUIRED, "null": REQUIRED},
    )
    tag_ids = fields.List(fields.Integer(strict=True), load_default=list)
    welcome_reply = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=MAX_REPLY, error=REPLY_TOO_LONG),
    )

    @post_load
    def _tidy(self, data: dict, **_kwargs) -> dict:
        data["tag_ids"] = list(dict.fromkeys(data["tag_ids"]))
        data["welcome_reply"] = data["welcome_reply"] or None
        return data


class QrCodeInput(QrCodeChanges):
    """A new code: checked before WeChat is asked anything. A scene of None takes the
    channel's next free number."""

    permanent = fields.Boolean(required=True, error_messages={"required": REQUIRED})
    scene = Scene(load_default=None, allow_none=True)
    expire_seconds = fields.Integer(strict=True, load_default=None, allow_none=True)

    @validates_schema
    def _scene_and_expiry(self, data: dict, **_kwargs) -> None:
        errors = {}
        permanent, scene, seconds = data["permanent"], data["scene"], data["expire_seconds"]
        if isinstance(scene, str) and not 1 <= len(scene) <= MAX_SCENE_CHARS:
            errors["scene"] = [SCENE_TEXT_LENGTH]
        elif isinstance(scene, int):
            high, message = (
                (MAX_PERMANENT_SCENE, PERMANENT_SCENE_RANGE)
                if permanent
                else (MAX_TEMPORARY_SCENE, TEMPORARY_SCENE_RANGE)
            )
            if not 1 <= scene <= high:
                errors["scene"] = [message]
        if permanent and seconds is not None:
            errors["expire_seconds"] = [PERMANENT_NO_EXPIRY]
        elif not permanent and seconds is None:
            errors["expire_seconds"] = [EXPIRY_REQUIRED]
        elif not permanent and not MIN_EXPIRE_SECONDS <= seconds <= MAX_EXPIRE_SECONDS:
            errors["expire_seconds"] = [EXPIRY_RANGE]
        if errors:
            raise ValidationError(errors)


# ---- changes ----------------------------------------------------------------------------


def create_qr_code(
    session: Session,
    channel: Channel,
    client,
    *,
    name: str,
    permanent: bool,
    scene: int | str | None = None,
    expire_seconds: int | None = None,
    tag_ids: list[int] | tuple[int, ...] = (),
    welcome_reply: str | None = None,
    user_id: int | None = None,
) -> QrCode:
    """Ask WeChat for the code, then store it (flushed, not committed: the caller commits
    it with its audit entry). ValidationError keyed by field for bad input, before any
    call; wechat.clients.WeChatApiError when WeChat refuses, with nothing stored."""
    if channel.kind != ChannelKind.OA:
        raise ValueError(f"channel {channel.id} is not an Official Account")
    values = QrCodeInput().load(
        {
            "name": name,
            "permanent": permanent,
            "scene": scene,
            "expire_seconds": expire_seconds,
            "tag_ids": list(tag_ids),
            "welcome_reply": welcome_reply,
        }
    )
    if values["scene"] is None:
        values["scene"] = next_free_scene(session, channel.id, permanent=values["permanent"])
    _check_database(session, channel.workspace_id, channel.id, values)
    answer = client.qrcode.create(_create_request(values))
    code = QrCode(
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        name=values["name"],
        permanent=values["permanent"],
        scene=str(values["scene"]),
        scene_is_int=isinstance(values["scene"], int),
        tag_ids=values["tag_ids"],
        welcome_reply=values["welcome_reply"],
        created_by=user_id,
    )
    _take_ticket(code, answer, values["expire_seconds"])
    try:
        with session.begin_nested():
            session.add(code)
    except IntegrityError:  # the same scene saved meanwhile by someone else
        raise ValidationError({"scene": [SCENE_TAKEN]}) from None
    return code


def update_qr_code(
    session: Session,
    code: QrCode,
    *,
    name: str,
    tag_ids: list[int] | tuple[int, ...] = (),
    welcome_reply: str | None = None,
) -> None:
    """Change what Harpoon keeps of a code (name, tags, welcome); not committed. The scene,
    kind and expiry are WeChat's: a different one is a new code."""
    values = QrCodeChanges().load(
        {"name": name, "tag_ids": list(tag_ids), "welcome_reply": welcome_reply}
    )
    _check_database(session, code.workspace_id, None, values)
    code.name, code.tag_ids = values["name"], values["tag_ids"]
    code.welcome_reply = values["welcome_reply"]
    session.flush()


def renew_qr_code(
    session: Session, code: QrCode, client, *, expire_seconds: int | None = None
) -> None:
    """Ask WeChat for the code's ticket again, same scene (not committed): a temporary code
    gets a new image valid `expire_seconds` (its scans, tags and welcome stay); a
    permanent one its ticket back (a fresh platform, such as a restarted sandbox, issues
    a new one)."""
    values = QrCodeInput().load(
        {
            "name": code.name,
            "permanent": code.permanent,
            "scene": int(code.scene) if code.scene_is_int else code.scene,
            "expire_seconds": expire_seconds,
        }
    )
    answer = client.qrcode.create(_create_request(values))
    _take_ticket(code, answer, values["expire_seconds"])
    session.flush()


def set_archived(session: Session, code: QrCode, archived: bool) -> None:
    code.archived = archived
    session.flush()


def next_free_scene(session: Session, channel_id: int, *, permanent: bool) -> int:
    """The smallest number no code of the channel uses as its scene."""
    used = {
        int(scene)
        for scene in session.scalars(select(QrCode.scene).where(QrCode.channel_id == channel_id))
        if scene.isascii() and scene.isdigit()
    }
    number = next(n for n in range(1, len(used) + 2) if n not in used)
    if permanent and number > MAX_PERMANENT_SCENE:
        raise ValidationError({"scene": [NO_FREE_SCENE]})
    return number


def _check_database(
    session: Session, workspace_id: int, channel_id: int | None, values: dict
) -> None:
    """What the schema cannot know: a scene in use (when creating), tags of the workspace."""
    errors: dict[str, list[str]] = {}
    if channel_id is not None:
        taken = session.scalar(
            select(QrCode.id).where(
                QrCode.channel_id == channel_id, QrCode.scene == str(values["scene"])
            )
        )
        if taken:
            errors["scene"] = [SCENE_TAKEN]
    errors.update(unknown_references(session, workspace_id, values, REFERENCES))
    if errors:
        raise ValidationError(errors)


def _create_request(values: dict) -> dict:
    scene, permanent = values["scene"], values["permanent"]
    if isinstance(scene, int):
        action, scene_field = ("QR_LIMIT_SCENE" if permanent else "QR_SCENE"), {"scene_id": scene}
    else:
        action = "QR_LIMIT_STR_SCENE" if permanent else "QR_STR_SCENE"
        scene_field = {"scene_str": scene}
    request = {"action_name": action, "action_info": {"scene": scene_field}}
    if not permanent:
        request["expire_seconds"] = values["expire_seconds"]
    return request


def _take_ticket(code: QrCode, answer: dict, expire_seconds: int | None) -> None:
    code.ticket, code.url = answer["ticket"], answer.get("url", "")
    if code.permanent:
        code.expires_at = None
    else:  # WeChat says how long it granted
        granted = int(answer.get("expire_seconds") or expire_seconds)
        code.expires_at = utcnow() + timedelta(seconds=granted)


# ---- statistics -------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanTotals:
    scans: int = 0  # by people already following
    follows: int = 0  # people who followed through the code
    people: int = 0  # distinct contacts who did either
    recent: int = 0  # scans and follows since the `recent_since` asked for


@dataclass(frozen=True)
class DayScans:
    day: date
    scans: int = 0
    follows: int = 0
    people: int = 0


def _scene():
    return Interaction.properties["scene"].as_string()


def _scan_kinds():
    # Rendered as literals, so the partial index ix_interactions_channel_scans applies.
    return Interaction.kind.in_(
        bindparam("scan_kinds", list(SCAN_KINDS), expanding=True, literal_execute=True)
    )


def _counts(rows):
    """scans, follows and people of a subquery's rows (kind, contact_id)."""
    return (
        func.coalesce(func.sum(case((rows.c.kind == "wechat.scan", 1), else_=0)), 0),
        func.coalesce(func.sum(case((rows.c.kind == "wechat.follow", 1), else_=0)), 0),
        func.count(rows.c.contact_id.distinct()),
    )


def scan_totals(
    session: Session, workspace_id: int, codes: list[QrCode], *, recent_since: datetime
) -> dict[int, ScanTotals]:
    """Each code's scans, follows and people, ever and since `recent_since`: one query."""
    if not codes:
        return {}
    rows = (
        select(
            Interaction.channel_id,
            _scene().label("scene"),
            Interaction.kind,
            Interaction.contact_id,
            Interaction.occurred_at,
        )
        .where(
            Interaction.workspace_id == workspace_id,
            Interaction.channel_id.in_(sorted({code.channel_id for code in codes})),
            _scan_kinds(),
            _scene().in_(sorted({code.scene for code in codes})),
        )
        .subquery()
    )
    recent = func.coalesce(func.sum(case((rows.c.occurred_at >= recent_since, 1), else_=0)), 0)
    found = {
        (channel_id, scene): ScanTotals(scans, follows, people, recent_count)
        for channel_id, scene, scans, follows, people, recent_count in session.execute(
            select(rows.c.channel_id, rows.c.scene, *_counts(rows), recent).group_by(
                rows.c.channel_id, rows.c.scene
            )
        )
    }
    return {code.id: found.get((code.channel_id, code.scene), ScanTotals()) for code in codes}


def local_days(zone: str, count: int, now: datetime | None = None) -> list[date]:
    """The last `count` calendar days in the time zone, today last."""
    today = (now or utcnow()).astimezone(ZoneInfo(zone)).date()
    return [today - timedelta(days=n) for n in range(count - 1, -1, -1)]


def day_start(day: date, zone: str) -> datetime:
    """Midnight of a calendar day in the time zone, in UTC."""
    return datetime.combine(day, time(), tzinfo=ZoneInfo(zone)).astimezone(UTC)


def daily_scans(session: Session, code: QrCode, zone: str, days: list[date]) -> list[DayScans]:
    """The code's scans, follows and people on each of `days` (consecutive calendar days in
    the workspace's time zone): one query. Each day is bounded by its own midnights,
    computed here, so the same SQL is exact in any zone on SQLite and PostgreSQL."""
    starts = [day_start(day, zone) for day in days]
    end = day_start(days[-1] + timedelta(days=1), zone)
    # The latest day whose midnight the event is past: its index in `days`.
    day_index = case(
        *[(Interaction.occurred_at >= start, n) for n, start in reversed(list(enumerate(starts)))]
    )
    rows = (
        select(day_index.label("day"), Interaction.kind, Interaction.contact_id)
        .where(
            Interaction.workspace_id == code.workspace_id,
            Interaction.channel_id == code.channel_id,
            _scan_kinds(),
            _scene() == code.scene,
            Interaction.occurred_at >= starts[0],
            Interaction.occurred_at < end,
        )
        .subquery()
    )
    found = {
        index: (scans, follows, people)
        for index, scans, follows, people in session.execute(
            select(rows.c.day, *_counts(rows)).group_by(rows.c.day)
        )
    }
    return [DayScans(day, *found.get(n, (0, 0, 0))) for n, day in enumerate(days)]


# --- the list -----------------------------------------------------------------------------


def qr_codes_of(session: Session, workspace_id: int, *, archived: bool) -> list[QrCode]:
    """The workspace's codes, the newest first; the archived ones too when `archived`."""
    query = select(QrCode).where(QrCode.workspace_id == workspace_id)
    if not archived:
        query = query.where(QrCode.archived.is_(False))
    return list(session.scalars(query.order_by(QrCode.created_at.desc(), QrCode.id.desc())))


def archived_count(session: Session, workspace_id: int) -> int:
    return session.scalar(
        select(func.count()).where(QrCode.workspace_id == workspace_id, QrCode.archived.is_(True))
    )
