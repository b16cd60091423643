"""群活码: a QR code that admits customers into up to five of the corp's customer groups
(`groupchat/add_join_way`, scene 2), stamping each join with its `state`, the attribution.

As for 联系我 codes, the GroupJoinWay row is written only after WeCom accepted the
change, a deleted way keeps its row (deleted_at) because the joins it brought name its
state, and states are unique per channel, deleted ways included. WeCom opens a new room
"<room_base_name><room_base_id + n>" when every listed group is full (200 people join by
QR code) and auto_create_room is on.
"""

import logging
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from marshmallow import Schema, ValidationError, fields, post_load, validate
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.days import last_days, local_day
from core.references import (
    CUSTOMER_GROUP,
    NOT_WORKSPACE_GROUPS,
    NOT_WORKSPACE_TAGS,
    TAG,
    Reference,
    declare,
    unknown_references,
)
from core.text import N_, Formatted, Length
from crm.tags import TagBook, apply_tags
from models import (
    Channel,
    CustomerGroup,
    CustomerGroupMember,
    GroupJoinWay,
    GroupMemberType,
    TagSource,
    utcnow,
)
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

MAX_NAME = GroupJoinWay.__table__.c.name.type.length
MAX_STATE = GroupJoinWay.__table__.c.state.type.length  # WeCom's limit: 30 characters
MAX_ROOM_BASE_NAME = GroupJoinWay.__table__.c.room_base_name.type.length  # WeCom's: 40
MAX_CHATS = 5  # groups per way, WeCom's limit
MAX_REMARK = 30  # WeCom cuts the remark here
QR_CODE = 2  # add_join_way scene
UNKNOWN_CONFIG_ID = 41044
JOINED_BY_QR = 3  # CustomerGroupMember.join_scene

# WeCom's image hosts: the only places a QR code's picture is fetched from (and the sandbox).
PICTURE_HOSTS = frozenset({"wework.qpic.cn", "p.qpic.cn", "wwcdn.weixin.qq.com"})
PICTURE_MAX_BYTES = 2_000_000
PICTURE_TIMEOUT = 5

REQUIRED = "Required."
STATE_TAKEN = "Another join code of this channel uses this state (deleted codes keep theirs)."
NOT_THE_CORPS_GROUPS = N_("Not live customer groups of this corp: %(chat_ids)s.")
CHOOSE_GROUPS = Formatted(N_("Choose 1 to %(max)s groups."), max=MAX_CHATS)
REFERENCES = declare(
    "group_join_way",
    Reference("tag_ids", TAG, NOT_WORKSPACE_TAGS),
    Reference("chat_ids", CUSTOMER_GROUP, NOT_WORKSPACE_GROUPS),
)


class Text(fields.String):
    """A string with its surrounding spaces dropped."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).strip()


def _not_blank(value: str) -> None:
    if not value:
        raise ValidationError(REQUIRED)


class JoinWayInput(Schema):
    """A 群活码 as the admin form gives it: checked before WeCom is asked anything."""

    name = Text(
        required=True,
        validate=[_not_blank, validate.Length(max=MAX_NAME)],
        error_messages={"required": REQUIRED},
    )
    state = Text(
        required=True,
        validate=[
            _not_blank,
            Length(
                max=MAX_STATE, error=Formatted(N_("At most %(max)s characters."), max=MAX_STATE)
            ),
            validate.Regexp(r"^\S+$", error=N_("No spaces.")),
        ],
        error_messages={"required": REQUIRED},
    )
    chat_ids = fields.List(
        Text(validate=validate.Length(1, 64)),
        required=True,
        validate=Length(1, MAX_CHATS, error=CHOOSE_GROUPS),
        error_messages={"required": CHOOSE_GROUPS},
    )
    auto_create_room = fields.Boolean(load_default=True)
    room_base_name = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=MAX_ROOM_BASE_NAME, error=f"At most {MAX_ROOM_BASE_NAME}."),
    )
    room_base_id = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(1, 100_000)
    )
    tag_ids = fields.List(fields.Integer(strict=True), load_default=list)

    @post_load
    def _tidy(self, data: dict, **_kwargs) -> dict:
        data["chat_ids"] = list(dict.fromkeys(data["chat_ids"]))
        data["tag_ids"] = list(dict.fromkeys(data["tag_ids"]))
        if data["auto_create_room"]:
            data["room_base_name"] = data["room_base_name"] or data["name"][:MAX_ROOM_BASE_NAME]
            data["room_base_id"] = data["room_base_id"] or 1
        else:
            data["room_base_name"] = data["room_base_name"] or None
        return data


def join_way_for_state(session: Session, channel_id: int, state: str | None) -> GroupJoinWay | None:
    """The 群活码 a join's state names (deleted ones too: the join still came through it);
    None for a join without one. Only a way of the corp's own workspace."""
    if not state:
        return None
    workspace = select(Channel.workspace_id).where(Channel.id == channel_id).scalar_subquery()
    return session.scalars(
        select(GroupJoinWay).where(
            GroupJoinWay.workspace_id == workspace,
            GroupJoinWay.channel_id == channel_id,
            GroupJoinWay.state == state,
        )
    ).one_or_none()


def tag_group_join(
    session: Session,
    book: TagBook,
    channel_id: int,
    state: str | None,
    contact_id: int,
    followups=None,
) -> GroupJoinWay | None:
    """The drain's hook for a customer joining a group: the tags of the 群活码 its state
    names go on the contact. Returns the way (None when the join came through none)."""
    way = join_way_for_state(session, channel_id, state)
    if way is not None and way.tag_ids:
        tags = [tag for t in way.tag_ids if (tag := book.by_id(t)) is not None]
        apply_tags(session, book, [contact_id], tags, source=TagSource.RULE, followups=followups)
    return way


def create_join_way(
    session: Session, channel: Channel, client, data: dict, created_by: int | None = None
) -> GroupJoinWay:
    """Create the way in WeCom, read its QR code, then store its row (flushed, not
    committed). ValidationError for bad input, before any call; WeChatApiError when WeCom
    refuses, with nothing stored."""
    values = _checked(session, channel, data, way_id=None)
    answer = client.post("externalcontact/groupchat/add_join_way", data=_remote_fields(values))
    config_id = answer["config_id"]
    try:
        remote = client.post(
            "externalcontact/groupchat/get_join_way", data={"config_id": config_id}
        )
    except WeChatApiError:
        _delete_remote(client, config_id)
        raise
    way = GroupJoinWay(
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        config_id=config_id,
        qr_code=remote["join_way"].get("qr_code"),
        created_by=created_by,
        **values,
    )
    try:
        with session.begin_nested():
            session.add(way)
    except IntegrityError:  # the same state saved meanwhile by someone else
        _delete_remote(client, config_id)
        raise ValidationError({"state": [STATE_TAKEN]}) from None
    return way


def update_join_way(session: Session, way: GroupJoinWay, client, data: dict) -> None:
    """Apply an edit in WeCom (every field again, as update_join_way wants), then to the
    row (flushed, not committed)."""
    channel = session.get(Channel, way.channel_id)
    values = _checked(session, channel, data, way_id=way.id)
    remote = _remote_fields(values)
    if remote != _remote_fields(_current_values(way)):
        client.post(
            "externalcontact/groupchat/update_join_way",
            data={"config_id": way.config_id, **remote},
        )
    try:
        with session.begin_nested():
            for name, value in values.items():
                setattr(way, name, value)
    except IntegrityError:
        raise ValidationError({"state": [STATE_TAKEN]}) from None


def delete_join_way(session: Session, way: GroupJoinWay, client) -> None:
    """Delete the way in WeCom; the row stays, marked deleted (not committed)."""
    _delete_remote(client, way.config_id, strict=True)
    way.deleted_at = utcnow()
    session.flush()


def _checked(session: Session, channel: Channel, data: dict, way_id: int | None) -> dict:
    """The input cleaned, or a ValidationError keyed by field: its shape first, then what
    the database knows (a state in use, the corp's groups, tags)."""
    values = JoinWayInput().load(data)
    errors: dict[str, list[str]] = {}
    taken = session.scalar(
        select(GroupJoinWay.id).where(
            GroupJoinWay.channel_id == channel.id,
            GroupJoinWay.state == values["state"],
            GroupJoinWay.id != (way_id or 0),
        )
    )
    if taken:
        errors["state"] = [STATE_TAKEN]
    errors.update(unknown_references(session, channel.workspace_id, values, REFERENCES))
    if "chat_ids" not in errors:
        live = set(
            session.scalars(
                select(CustomerGroup.chat_id).where(
                    CustomerGroup.workspace_id == channel.workspace_id,
                    CustomerGroup.channel_id == channel.id,
                    CustomerGroup.dismissed_at.is_(None),
                    CustomerGroup.chat_id.in_(values["chat_ids"]),
                )
            )
        )
        missing = [chat_id for chat_id in values["chat_ids"] if chat_id not in live]
        if missing:
            errors["chat_ids"] = [Formatted(NOT_THE_CORPS_GROUPS, chat_ids=", ".join(missing))]
    if errors:
        raise ValidationError(errors)
    return values


def _remote_fields(values: dict) -> dict:
    """What WeCom keeps of a way (tags are Harpoon's own)."""
    fields_ = {
        "scene": QR_CODE,
        "remark": values["name"][:MAX_REMARK],
        "auto_create_room": 1 if values["auto_create_room"] else 0,
        "chat_id_list": list(values["chat_ids"]),
        "state": values["state"],
    }
    if values["auto_create_room"]:
        fields_["room_base_name"] = values["room_base_name"]
        fields_["room_base_id"] = values["room_base_id"]
    return fields_


def _current_values(way: GroupJoinWay) -> dict:
    return {
        "name": way.name,
        "state": way.state,
        "chat_ids": way.chat_ids,
        "auto_create_room": way.auto_create_room,
        "room_base_name": way.room_base_name,
        "room_base_id": way.room_base_id,
    }


def _delete_remote(client, config_id: str | None, *, strict: bool = False) -> None:
    """del_join_way; a way WeCom no longer knows is as good as deleted. Unless `strict`, a
    refusal is only logged: the way is already detached from Harpoon."""
    if not config_id:
        return
    try:
        client.post("externalcontact/groupchat/del_join_way", data={"config_id": config_id})
    except WeChatApiError as exc:
        if exc.errcode == UNKNOWN_CONFIG_ID:
            return
        if strict:
            raise
        log.warning("del_join_way %s failed, left in WeCom: %s", config_id, exc)


def qr_picture(url: str | None, sandbox_url: str = "") -> tuple[bytes, str] | None:
    """The QR code's picture (bytes, its image type) from WeCom's image host, for the admin
    page to show from its own origin; None when the URL is no WeCom picture or it could not
    be had."""
    if not url:
        return None
    parts = urlsplit(url)
    sandbox = urlsplit(sandbox_url) if sandbox_url else None
    from_sandbox = sandbox is not None and parts.netloc == sandbox.netloc
    if not from_sandbox and (parts.scheme != "https" or parts.hostname not in PICTURE_HOSTS):
        return None
    try:
        answer = requests.get(url, timeout=PICTURE_TIMEOUT, stream=True)
        picture = answer.raw.read(PICTURE_MAX_BYTES + 1, decode_content=True)
    except requests.RequestException as exc:
        log.warning("the QR code picture %s could not be fetched: %s", url, exc)
        return None
    kind = answer.headers.get("Content-Type", "").split(";")[0]
    if (
        answer.status_code != 200
        or not kind.startswith("image/")
        or len(picture) > PICTURE_MAX_BYTES
    ):
        return None
    return picture, kind


# ---- the pages ---------------------------------------------------------------------------


def join_ways_of(session: Session, workspace_id: int) -> list[GroupJoinWay]:
    """The workspace's 群活码, the deleted ones last, each part oldest first."""
    return list(
        session.scalars(
            select(GroupJoinWay)
            .where(GroupJoinWay.workspace_id == workspace_id)
            .order_by(
                GroupJoinWay.deleted_at.is_not(None), GroupJoinWay.created_at, GroupJoinWay.id
            )
        )
    )


def groups_to_choose(session: Session, channel: Channel, current: list[str]) -> list:
    """The corp's customer groups a way may admit into: the live ones, and those it lists."""
    return list(
        session.scalars(
            select(CustomerGroup)
            .where(
                CustomerGroup.workspace_id == channel.workspace_id,
                CustomerGroup.channel_id == channel.id,
                CustomerGroup.dismissed_at.is_(None) | CustomerGroup.chat_id.in_(current),
            )
            .order_by(CustomerGroup.name, CustomerGroup.chat_id)
        )
    )


def joins_per_way(session: Session, workspace_id: int) -> dict[int, int]:
    """way id -> customers who joined through it (now in a group or since left)."""
    ways = {
        (way.channel_id, way.state): way.id
        for way in session.scalars(
            select(GroupJoinWay).where(GroupJoinWay.workspace_id == workspace_id)
        )
    }
    counts: dict[int, int] = {}
    for channel_id, state, count in session.execute(
        select(CustomerGroup.channel_id, CustomerGroupMember.state, func.count())
        .join(CustomerGroup, CustomerGroup.id == CustomerGroupMember.group_id)
        .where(
            CustomerGroupMember.workspace_id == workspace_id,
            CustomerGroupMember.member_type == GroupMemberType.EXTERNAL,
            CustomerGroupMember.state.is_not(None),
        )
        .group_by(CustomerGroup.channel_id, CustomerGroupMember.state)
    ):
        way_id = ways.get((channel_id, state))
        if way_id is not None:
            counts[way_id] = counts.get(way_id, 0) + count
    return counts


def way_joins(
    session: Session, way: GroupJoinWay, timezone: str, days: int
) -> tuple[list[tuple[CustomerGroup, int, int]], list[str], dict[str, int]]:
    """A way's joins: per group (the group, joined, still in it), and per day over the last
    `days` calendar days in the time zone (the days, day -> joins)."""
    by_way = (
        CustomerGroupMember.workspace_id == way.workspace_id,
        CustomerGroup.workspace_id == way.workspace_id,
        CustomerGroup.channel_id == way.channel_id,
        CustomerGroupMember.member_type == GroupMemberType.EXTERNAL,
        CustomerGroupMember.state == way.state,
    )
    per_group = [
        (group, joined, staying)
        for group, joined, staying in session.execute(
            select(
                CustomerGroup,
                func.count(),
                func.count(CustomerGroupMember.id).filter(CustomerGroupMember.left_at.is_(None)),
            )
            .join(CustomerGroupMember, CustomerGroupMember.group_id == CustomerGroup.id)
            .where(*by_way)
            .group_by(CustomerGroup.id)
            .order_by(CustomerGroup.name, CustomerGroup.id)
        )
    ]
    shown = last_days(days, timezone)
    day = local_day(session, CustomerGroupMember.joined_at, timezone)
    since = utcnow() - timedelta(days=days + 1)
    daily = {
        on: count
        for on, count in session.execute(
            select(day, func.count())
            .select_from(CustomerGroupMember)
            .join(CustomerGroup, CustomerGroup.id == CustomerGroupMember.group_id)
            .where(*by_way, CustomerGroupMember.joined_at >= since)
            .group_by(day)
        )
        if on in shown
    }
    return per_group, shown, daily


def group_names(session: Session, workspace_id: int, chat_ids: list[str]) -> dict[str, str]:
    """chat_id -> the group's name, for the groups of the workspace among `chat_ids`."""
    if not chat_ids:
        return {}
    return dict(
        session.execute(
            select(CustomerGroup.chat_id, CustomerGroup.name).where(
                CustomerGroup.workspace_id == workspace_id,
                CustomerGroup.chat_id.in_(chat_ids),
            )
        ).all()
    )
