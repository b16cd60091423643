"""联系我 codes: a QR code that reaches one or several salespeople and stamps every add
with its `state`, the channel attribution.

WeCom has no list API for them, so the ContactWay row is the only record: it is
written only after WeCom accepted the change, and a deleted code keeps its row
(with deleted_at) because the adds it brought point at it. States are unique per
channel, deleted codes included, so a state always names one code.
"""

import logging
import re
from datetime import timedelta

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.days import last_days, local_day
from core.references import (
    NOT_WORKSPACE_TAGS,
    TAG,
    Reference,
    declare,
    unknown_references,
)
from models import Channel, ContactWay, FollowRelation, Staff, utcnow
from sales.contact_way_rotation import (
    ALL,
    NOBODY,
    ROTATIONS,
    WEEKDAYS,
    Wanted,
    mark_applied,
    parse_time,
    wanted_config,
    workspace_timezone,
)
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

MAX_NAME = ContactWay.__table__.c.name.type.length
MAX_STATE = ContactWay.__table__.c.state.type.length  # WeCom's limit too: 30 characters
MAX_WELCOME = ContactWay.__table__.c.welcome_text.type.length
MAX_STAFF = 100  # members per code, WeCom's limit
MAX_REMARK = 30  # WeCom's limit on the code's remark, where the console shows our name
SINGLE, MULTI = 1, 2  # add_contact_way types: one member / several
QR_CODE = 2  # add_contact_way scene
UNKNOWN_CONFIG_ID = 41044
# Filled in by the welcome message (sales.welcome) from what Harpoon knows.
WELCOME_PLACEHOLDERS = ("name", "account", "staff", "last_read")
PLACEHOLDER = re.compile(r"\{(\w+)\}")

REQUIRED = "Required."
STATE_TAKEN = "Another code of this channel uses this state (deleted codes keep theirs)."
NOT_ACTIVE_STAFF = "Not staff with the customer-contact permission: {userids}."
BACKUP_NEEDED = "A daily cap or a schedule needs backup staff: WeCom cannot point a code at nobody."
BACKUP_IS_MEMBER = "Backup staff cannot also be regular members: {userids}."
BAD_TIME = "Use a 24-hour time such as 09:00."
START_BEFORE_END = "The start must be before the end."
MAX_WINDOWS = 4
MAX_CAP = 10_000
# Staff are checked against the code's own corp (stricter than the workspace), below.
REFERENCES = declare("contact_way", Reference("tag_ids", TAG, NOT_WORKSPACE_TAGS))


def unknown_placeholders(text: str) -> list[str]:
    """The {placeholders} in a welcome text that nothing fills in, in order of appearance."""
    names = PLACEHOLDER.findall(text or "")
    return list(dict.fromkeys(name for name in names if name not in WELCOME_PLACEHOLDERS))


class Text(fields.String):
    """A string with its surrounding spaces dropped (values pasted into forms carry them)."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


def _not_blank(value: str) -> None:
    if not value:
        raise ValidationError(REQUIRED)


class ClockTime(Text):
    """A 24-hour "HH:MM"."""

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            parse_time(text)
        except ValueError:
            raise ValidationError(BAD_TIME) from None
        return text


class Hours(Schema):
    """From-to times of one day (the end excluded); a window may not cross midnight."""

    start = ClockTime(required=True, error_messages={"required": REQUIRED})
    end = ClockTime(required=True, error_messages={"required": REQUIRED})

    @post_load
    def _ordered(self, data: dict, **_kwargs) -> dict:
        if parse_time(data["start"]) >= parse_time(data["end"]):
            raise ValidationError(START_BEFORE_END, "end")
        return data


class Schedule(Hours):
    days = fields.List(
        fields.Integer(strict=True, validate=validate.OneOf(WEEKDAYS)),
        required=True,
        validate=validate.Length(min=1, error="Choose at least one weekday."),
        error_messages={"required": "Choose at least one weekday."},
    )

    @post_load
    def _days(self, data: dict, **_kwargs) -> dict:
        data["days"] = sorted(set(data["days"]))
        return data


class ContactWayInput(Schema):
    """A code as the admin form gives it: checked before WeCom is asked anything."""

    name = Text(
        required=True,
        validate=[_not_blank, validate.Length(max=MAX_NAME)],
        error_messages={"required": REQUIRED},
    )
    state = Text(
        required=True,
        validate=[
            _not_blank,
            validate.Length(max=MAX_STATE, error=f"At most {MAX_STATE} characters."),
            validate.Regexp(r"^\S+$", error="No spaces."),
        ],
        error_messages={"required": REQUIRED},
    )
    staff_userids = fields.List(
        Text(validate=validate.Length(1, Staff.__table__.c.userid.type.length)),
        required=True,
        validate=validate.Length(1, MAX_STAFF, error=f"Choose 1 to {MAX_STAFF} staff members."),
        error_messages={"required": f"Choose 1 to {MAX_STAFF} staff members."},
    )
    skip_verify = fields.Boolean(load_default=True)
    rotation = fields.String(load_default=ALL, validate=validate.OneOf(ROTATIONS))
    daily_cap = fields.Integer(
        load_default=None,
        allow_none=True,
        strict=True,
        validate=validate.Range(1, MAX_CAP, error=f"From 1 to {MAX_CAP} adds a day."),
    )
    backup_userids = fields.List(
        Text(validate=validate.Length(1, Staff.__table__.c.userid.type.length)),
        load_default=list,
        validate=validate.Length(max=MAX_STAFF, error=f"At most {MAX_STAFF} staff members."),
    )
    schedule = fields.Nested(Schedule, load_default=None, allow_none=True)
    auto_accept = fields.List(
        fields.Nested(Hours),
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=MAX_WINDOWS, error=f"At most {MAX_WINDOWS} windows."),
    )
    tag_ids = fields.List(fields.Integer(strict=True), load_default=list)
    welcome_text = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=MAX_WELCOME, error=f"At most {MAX_WELCOME} characters."),
    )

    @validates("welcome_text")
    def _known_placeholders(self, value: str | None, **_kwargs):
        unknown = unknown_placeholders(value or "")
        if unknown:
            shown = ", ".join(f"{{{name}}}" for name in unknown)
            allowed = ", ".join(f"{{{name}}}" for name in WELCOME_PLACEHOLDERS)
            raise ValidationError(f"Unknown placeholder {shown}: use only {allowed}.")

    @post_load
    def _tidy(self, data: dict, **_kwargs) -> dict:
        data["staff_userids"] = list(dict.fromkeys(data["staff_userids"]))
        data["backup_userids"] = list(dict.fromkeys(data["backup_userids"]))
        data["auto_accept"] = data["auto_accept"] or None
        both = [u for u in data["backup_userids"] if u in data["staff_userids"]]
        if both:
            raise ValidationError(
                BACKUP_IS_MEMBER.format(userids=", ".join(both)), "backup_userids"
            )
        if (data["daily_cap"] or data["schedule"]) and not data["backup_userids"]:
            raise ValidationError(BACKUP_NEEDED, "backup_userids")
        data["tag_ids"] = list(dict.fromkeys(data["tag_ids"]))
        data["welcome_text"] = (data["welcome_text"] or "").strip() or None
        return data


def contact_way_for_state(
    session: Session, channel_id: int, state: str | None
) -> ContactWay | None:
    """The live code an add's State names (None for an add without one, or a deleted code);
    only a code of the corp's own workspace."""
    if not state:
        return None
    workspace = select(Channel.workspace_id).where(Channel.id == channel_id).scalar_subquery()
    return session.scalars(
        select(ContactWay).where(
            ContactWay.workspace_id == workspace,
            ContactWay.channel_id == channel_id,
            ContactWay.state == state,
            ContactWay.deleted_at.is_(None),
        )
    ).one_or_none()


def create_contact_way(session: Session, channel: Channel, client, data: dict) -> ContactWay:
    """Create the code in WeCom, then its row (flushed, not committed: the caller commits
    it with its audit entry). ValidationError for bad input, before any call;
    WeChatApiError when WeCom refuses, with nothing stored."""
    values = _checked(session, channel, data, way_id=None)
    wanted = _wanted(session, channel, values, way_id=None)
    answer = client.external_contact.add_contact_way(**_remote_fields(values, wanted))
    way = ContactWay(
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        config_id=answer["config_id"],
        qr_code=answer.get("qr_code"),
        **values,
    )
    mark_applied(way, wanted.userids, wanted.skip_verify, utcnow())
    try:
        with session.begin_nested():
            session.add(way)
    except IntegrityError:  # the same state saved meanwhile by someone else
        _delete_remote(client, answer["config_id"])
        raise ValidationError({"state": [STATE_TAKEN]}) from None
    return way


def update_contact_way(session: Session, way: ContactWay, client, data: dict) -> bool:
    """Apply an edit in WeCom, then to the row (flushed, not committed). Returns True when
    the QR code changed: WeCom cannot turn a one-person code into a several-person one
    (or back), so that edit replaces the code, with the same state."""
    channel = session.get(Channel, way.channel_id)
    values = _checked(session, channel, data, way_id=way.id)
    wanted = _wanted(session, channel, values, way_id=way.id)
    remote = _remote_fields(values, wanted)
    old_config_id = way.config_id
    replacement = None  # (config_id, qr_code) of a code that replaces the old one
    if remote["type"] != _way_type(_current_values(way)):
        answer = client.external_contact.add_contact_way(**remote)
        replacement = answer["config_id"], answer.get("qr_code")
    elif remote != _applied_fields(way):
        client.external_contact.update_contact_way(
            way.config_id,
            remote["remark"],
            skip_verify=remote["skip_verify"],
            state=remote["state"],
            user=remote["user"],
        )
    try:
        with session.begin_nested():
            for name, value in values.items():
                setattr(way, name, value)
            if replacement:
                way.config_id, way.qr_code = replacement
            mark_applied(way, wanted.userids, wanted.skip_verify, utcnow())
    except IntegrityError:  # the same state saved meanwhile by someone else
        if replacement:
            _delete_remote(client, replacement[0])
        raise ValidationError({"state": [STATE_TAKEN]}) from None
    if replacement:
        _delete_remote(client, old_config_id)
    return replacement is not None


def delete_contact_way(session: Session, way: ContactWay, client) -> None:
    """Delete the code in WeCom; the row stays, marked deleted (not committed)."""
    _delete_remote(client, way.config_id, strict=True)
    way.deleted_at = utcnow()
    session.flush()


def _checked(session: Session, channel: Channel, data: dict, way_id: int | None) -> dict:
    """The input cleaned, or a ValidationError keyed by field: the input's shape first,
    then what the database knows (a state in use, staff, tags)."""
    values = ContactWayInput().load(data)
    errors: dict[str, list[str]] = {}
    taken = session.scalar(
        select(ContactWay.id).where(
            ContactWay.channel_id == channel.id,
            ContactWay.state == values["state"],
            ContactWay.id != (way_id or 0),
        )
    )
    if taken:
        errors["state"] = [STATE_TAKEN]
    active = set(
        session.scalars(
            select(Staff.userid).where(
                Staff.channel_id == channel.id,
                Staff.active.is_(True),
                Staff.userid.in_([*values["staff_userids"], *values["backup_userids"]]),
            )
        )
    )
    for name in ("staff_userids", "backup_userids"):
        missing = [userid for userid in values[name] if userid not in active]
        if missing:
            errors[name] = [NOT_ACTIVE_STAFF.format(userids=", ".join(missing))]
    errors.update(unknown_references(session, channel.workspace_id, values, REFERENCES))
    if errors:
        raise ValidationError(errors)
    return values


def _way_type(values: dict) -> int:
    """A rotating code or one with backups is a several-person code even while it points
    at one member: WeCom cannot turn a one-person code into a several-person one."""
    several = values.get("rotation", ALL) != ALL or values.get("backup_userids")
    return MULTI if several or len(values["staff_userids"]) > 1 else SINGLE


def _wanted(session: Session, channel: Channel, values: dict, way_id: int | None) -> Wanted:
    """Who the code points at now, with the input's settings (and the code's adds)."""
    draft = ContactWay(
        id=way_id, workspace_id=channel.workspace_id, channel_id=channel.id, **values
    )
    timezone = workspace_timezone(session, channel.workspace_id)
    wanted = wanted_config(session, draft, utcnow(), timezone)
    if not wanted.userids:
        raise ValidationError({"staff_userids": [NOBODY]})
    return wanted


def _remote_fields(values: dict, wanted: Wanted) -> dict:
    """What WeCom keeps of a code (tags and the welcome text are Harpoon's own): the
    members who may receive the next add, and skip_verify as it should be now."""
    return {
        "type": _way_type(values),
        "scene": QR_CODE,
        "remark": values["name"][:MAX_REMARK],
        "skip_verify": wanted.skip_verify,
        "state": values["state"],
        "user": list(wanted.userids),
    }


def _applied_fields(way: ContactWay) -> dict:
    return {
        "type": _way_type(_current_values(way)),
        "scene": QR_CODE,
        "remark": way.name[:MAX_REMARK],
        "skip_verify": way.applied_skip_verify,
        "state": way.state,
        "user": list(way.applied_userids or []),
    }


def _current_values(way: ContactWay) -> dict:
    return {
        "rotation": way.rotation,
        "backup_userids": way.backup_userids,
        "staff_userids": way.staff_userids,
    }


def _delete_remote(client, config_id: str | None, *, strict: bool = False) -> None:
    """del_contact_way; a code WeCom no longer knows is as good as deleted. Unless
    `strict`, a refusal is only logged: the code is already detached from Harpoon."""
    if not config_id:
        return
    try:
        client.external_contact.del_contact_way(config_id)
    except WeChatApiError as exc:
        if exc.errcode == UNKNOWN_CONFIG_ID:
            return
        if strict:
            raise
        log.warning("del_contact_way %s failed, left in WeCom: %s", config_id, exc)


# ---- the codes page ---------------------------------------------------------------------


def contact_ways_of(session: Session, workspace_id: int) -> list[ContactWay]:
    """The workspace's codes, the deleted ones last, each group oldest first."""
    return list(
        session.scalars(
            select(ContactWay)
            .where(ContactWay.workspace_id == workspace_id)
            .order_by(ContactWay.deleted_at.is_not(None), ContactWay.created_at, ContactWay.id)
        )
    )


def staff_to_choose(session: Session, channel: Channel, current: list[str]) -> list[Staff]:
    """The corp's staff a code may reach: the active ones, and whoever it reaches now."""
    return list(
        session.scalars(
            select(Staff)
            .where(
                Staff.workspace_id == channel.workspace_id,
                Staff.channel_id == channel.id,
                Staff.active.is_(True) | Staff.userid.in_(current),
            )
            .order_by(Staff.name, Staff.userid)
        )
    )


def adds_per_code(
    session: Session, workspace_id: int, timezone: str, days: int
) -> tuple[list[str], dict[int, dict[str, int]], dict[int, int]]:
    """The adds the workspace's codes brought: (the last `days` calendar days in the time
    zone, code id -> day -> adds on those days, code id -> adds in all)."""
    since = utcnow() - timedelta(days=days)
    by_way = (
        FollowRelation.workspace_id == workspace_id,
        FollowRelation.contact_way_id.is_not(None),
    )
    total = dict(
        session.execute(
            select(FollowRelation.contact_way_id, func.count())
            .where(*by_way)
            .group_by(FollowRelation.contact_way_id)
        ).all()
    )
    shown = last_days(days, timezone)
    day = local_day(session, FollowRelation.added_at, timezone)
    daily: dict[int, dict[str, int]] = {}
    for way_id, on, count in session.execute(
        select(FollowRelation.contact_way_id, day, func.count())
        .where(*by_way, FollowRelation.added_at >= since - timedelta(days=1))
        .group_by(FollowRelation.contact_way_id, day)
    ):
        if on in shown:
            daily.setdefault(way_id, {})[on] = count
    return shown, daily, total
