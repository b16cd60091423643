"""Touchpoints that arrive without a WeChat callback: the kinds, the API's items, and the
inbox row each becomes.

The web's (a tracked link opened, reading time, a like, a share, a form submitted)
and the API's (email opens and clicks, live-stream minutes, offline events,
webinars, meetings a CRM logged) enter the same durable inbox as callbacks, as
JSON; handlers.touchpoints records them in the drain.
"""

import hashlib
import json
from datetime import UTC, datetime, timedelta

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)
from sqlalchemy.orm import Session

from core.lanes import lane_of
from core.references import CHANNEL, Reference, declare, unknown_references
from crm.contacts import normalized_identity
from models import (
    IdentityKind,
    InboundEvent,
    InboxStatus,
)
from models.base import insert_ignoring_conflicts
from models.interaction import NPS_KIND
from wechat.events import NormalizedEvent

WEB = "web"  # Harpoon's own pages: tracked links, the reading beacon, forms
API = "api"  # POST /api/v1/touchpoints
PLATFORMS = (WEB, API)

# Every kind a touchpoint may be, with what it means (the OpenAPI document shows these).
KINDS = {
    "content.view": "Opened a content item (a tracked link, or a page elsewhere).",
    "content.read": "Reading time on a page: `minutes`.",
    "content.like": "Liked a content item.",
    "content.share": "Shared a content item.",
    "content.comment": "Commented on a content item.",
    "form.submit": "Submitted a form (`person` carries what they stated).",
    "email.open": "Opened an email.",
    "email.click": "Clicked a link in an email.",
    "email.unsubscribe": "Unsubscribed from email.",
    "email.bounce": "An email to them bounced.",
    "email.complaint": "They marked an email as spam.",
    "live.join": "Joined a live stream.",
    "live.leave": "Left a live stream.",
    "live.watch": "Watched a live stream: `minutes` watched.",
    "event.register": "Registered for an offline event.",
    "event.checkin": "Checked in at an offline event.",
    "webinar.register": "Registered for a webinar.",
    "webinar.attend": "Attended a webinar: `minutes` attended.",
    "sales.meeting": "A meeting with sales, logged by the CRM.",
    "sales.call": "A call with sales, logged by the CRM.",
    "sales.task_done": "A salesperson completed a task for them (`task_id`).",
    "sales.note": "A salesperson wrote a note about them (`note_id`).",
    "sales.chat_send": "A salesperson sent them content from the WeCom chat sidebar.",
    "survey.nps": "Answered the NPS question: `properties.score`, an integer 0-10.",
}
# Touchpoints Harpoon itself writes into the inbox (sales.groups: a customer joined or left
# a WeCom customer group): recorded like the rest, never accepted from the API.
GROUP_JOIN, GROUP_LEAVE = "wecom.group_join", "wecom.group_leave"
RECORDED_KINDS = (GROUP_JOIN, GROUP_LEAVE)
# Identities, in the order they name a person: the first one known wins, the rest join.
IDENTITY_ORDER = (
    IdentityKind.OPENID,
    IdentityKind.EXTERNAL_USERID,
    IdentityKind.UNIONID,
    IdentityKind.PHONE,
    IdentityKind.EMAIL,
)
CHANNEL_BOUND = (IdentityKind.OPENID, IdentityKind.EXTERNAL_USERID)
MAX_BATCH = 1000
MAX_PROPERTIES_BYTES = 4096
MAX_AGE = timedelta(days=365)
MAX_FUTURE = timedelta(minutes=5)


# ---- the API's items ---------------------------------------------------------------------


class PersonSchema(Schema):
    """What the person stated (a registration, a CRM record): enriches the contact."""

    class Meta:
        unknown = RAISE

    name = fields.String(validate=validate.Length(1, 100))
    company = fields.String(validate=validate.Length(1, 200))
    title = fields.String(validate=validate.Length(1, 100))


# The API's batch: each item's channel_id must name one of the workspace's channels.
BATCH_REFERENCES = declare("touchpoints", Reference("items.*.channel_id", CHANNEL))


def foreign_channels(
    session: Session, workspace_id: int, items: dict[int, dict]
) -> dict[int, dict[str, list[str]]]:
    """index -> errors of the items (valid ones, by their index in the batch) that name
    another workspace's channel; one query for the batch."""
    errors: dict[int, dict[str, list[str]]] = {}
    unknown = unknown_references(session, workspace_id, {"items": items}, BATCH_REFERENCES)
    for path, messages in unknown.items():
        _items, index, field = path.split(".")
        errors.setdefault(int(index), {})[field] = messages
    return errors


class TouchpointSchema(Schema):
    """One touchpoint of the API's batch. At least one identity names the person."""

    class Meta:
        unknown = RAISE

    kind = fields.String(
        required=True,
        validate=validate.OneOf(tuple(KINDS)),
        metadata={"description": "What happened."},
    )
    external_id = fields.String(
        validate=validate.Length(1, 128),
        metadata={"description": "Your id of this touchpoint: posting it again adds nothing."},
    )
    occurred_at = fields.AwareDateTime(
        metadata={"description": "When it happened (ISO 8601 with offset); default: now."}
    )
    openid = fields.String(validate=validate.Length(1, 128))
    channel_id = fields.Integer(
        strict=True,
        metadata={
            "description": "The channel of the person's WeChat identity: the OA of the "
            "`openid`, or, in an item without an openid, the WeCom corp of the "
            "`external_userid`. Needed when the workspace has several OAs (for an openid), and "
            "when an external_userid is the item's only identity and the workspace has no or "
            "several WeCom corps; otherwise the item is rejected with an error on `channel_id`. "
            "Must be a channel of the API key's workspace."
        },
    )
    unionid = fields.String(validate=validate.Length(1, 128))
    external_userid = fields.String(validate=validate.Length(1, 128))
    phone = fields.String(validate=validate.Length(5, 32))
    email = fields.Email(validate=validate.Length(3, 254))
    minutes = fields.Float(
        validate=validate.Range(0, 1440),
        metadata={"description": "Engagement minutes (watching, reading, attending)."},
    )
    person = fields.Nested(PersonSchema)
    properties = fields.Dict(
        keys=fields.String(validate=validate.Length(1, 64)),
        metadata={"description": "Anything else worth keeping, e.g. campaign, url, topics."},
    )

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _checks(self, data: dict, original, **_) -> None:
        if not isinstance(original, dict):
            return  # not an object: the schema says so
        errors: dict[str, list[str]] = {}
        if not any(original.get(kind) for kind in IDENTITY_ORDER):
            errors["_schema"] = [
                "Name the person: openid, unionid, external_userid, phone or email."
            ]
        if data.get("phone") and len(normalized_identity("phone", data["phone"])) < 5:
            errors["phone"] = ["Not a phone number."]
        when = data.get("occurred_at")
        now = datetime.now(UTC)
        if when is not None and when > now + MAX_FUTURE:
            errors["occurred_at"] = ["In the future."]
        if when is not None and when < now - MAX_AGE:
            errors["occurred_at"] = ["More than a year ago."]
        properties = data.get("properties") or {}
        if len(json.dumps(properties, ensure_ascii=False).encode()) > MAX_PROPERTIES_BYTES:
            errors["properties"] = [f"Over {MAX_PROPERTIES_BYTES} bytes."]
        elif data.get("kind") == NPS_KIND and not _nps_score(properties.get("score")):
            errors["properties"] = ["An NPS answer needs `score`, an integer 0-10."]
        if errors:
            raise ValidationError(errors)


def _nps_score(score) -> bool:
    return isinstance(score, int) and not isinstance(score, bool) and 0 <= score <= 10


def api_row(workspace_id: int, item: dict, received_at: datetime, lanes: int) -> dict:
    """The inbox row of one valid API item (TouchpointSchema's output)."""
    occurred = item.get("occurred_at") or received_at
    named = (*IDENTITY_ORDER, "channel_id", "corp_channel_id")
    identity = {kind: item[kind] for kind in named if item.get(kind)}
    payload = {
        "kind": item["kind"],
        "occurred_at": occurred.astimezone(UTC).isoformat(),
        "identity": identity,
        "person": item.get("person") or {},
        "properties": item.get("properties") or {},
        "minutes": item.get("minutes") or 0.0,
    }
    if item.get("external_id"):
        payload["external_id"] = item["external_id"]
        key = f"api:{item['external_id']}"
    else:  # the same content at the same moment is one touchpoint
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        key = f"api:h:{digest[:40]}"
    return inbox_row(workspace_id, None, API, key, payload, received_at, lanes)


def person_key(identity: dict) -> str | None:
    """The strongest identity a touchpoint names (its lane's key): an openid or
    external_userid hashes as the callbacks of that person do."""
    for kind in IDENTITY_ORDER:
        if identity.get(kind):
            return normalized_identity(kind, str(identity[kind]))
    return None


def inbox_row(
    workspace_id: int,
    channel_id: int | None,
    platform: str,
    dedupe_key: str,
    payload: dict,
    received_at: datetime,
    lanes: int,
) -> dict:
    return {
        "workspace_id": workspace_id,
        "channel_id": channel_id,
        "platform": platform,
        "dedupe_key": dedupe_key,
        "lane": lane_of(person_key(payload.get("identity") or {}), lanes),
        "payload": json.dumps(payload, ensure_ascii=False, default=str),
        "status": InboxStatus.PENDING.value,
        "attempts": 0,
        "received_at": received_at,
    }


def store_web_touchpoint(
    session: Session,
    workspace_id: int,
    channel_id: int | None,
    dedupe_key: str,
    payload: dict,
    received_at: datetime,
    lanes: int,
) -> bool:
    """A touchpoint of Harpoon's pages into the inbox, in the caller's transaction (with the
    row it is about); False when the inbox had it already."""
    row = inbox_row(workspace_id, channel_id, WEB, dedupe_key, payload, received_at, lanes)
    stmt = insert_ignoring_conflicts(session.get_bind().dialect.name, InboundEvent.__table__)
    # RETURNING, not rowcount: the ORM session's execute reports -1 on PostgreSQL.
    return session.execute(stmt.values(row).returning(InboundEvent.id)).scalar() is not None


# ---- in the drain -------------------------------------------------------------------------


def parse(platform: str, payload: str) -> NormalizedEvent:
    data = json.loads(payload)
    kind = data["kind"]
    return NormalizedEvent(
        kind=kind if kind in KINDS or kind in RECORDED_KINDS else None,
        platform=platform,
        subject=None,
        occurred_at=datetime.fromisoformat(data["occurred_at"]),
        properties=data.get("properties") or {},
        source_type=f"{platform}:{kind}",
        details={
            "identity": data.get("identity") or {},
            "person": data.get("person") or {},
            "minutes": float(data.get("minutes") or 0.0),
            "refs": data.get("refs") or {},
        },
    )


def identity_keys(event: NormalizedEvent) -> list[tuple[str, int | None, str]]:
    """(kind, channel_id, value) of every identity the touchpoint names, strongest first; a
    channel-bound identity without its channel has channel None (matched on any).

    `channel_id` is the openid's OA, or the external_userid's corp when no openid is named;
    beside an openid, the external_userid's corp is `corp_channel_id`."""
    given = event.details.get("identity") or {}
    channels = {
        IdentityKind.OPENID: given.get("channel_id"),
        IdentityKind.EXTERNAL_USERID: given.get("corp_channel_id")
        or (None if given.get("openid") else given.get("channel_id")),
    }
    keys = []
    for kind in IDENTITY_ORDER:
        value = given.get(kind)
        if value:
            value = normalized_identity(kind, str(value))
            keys.append((kind, channels.get(kind), value))
    return keys


def creatable(keys: list[tuple[str, int | None, str]]) -> tuple[str, int | None, str] | None:
    """The strongest identity that can stand alone (an openid or external_userid only
    with its channel)."""
    return next((k for k in keys if k[0] not in CHANNEL_BOUND or k[1] is not None), None)
