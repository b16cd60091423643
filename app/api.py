"""The touchpoint API: external systems (email, live streaming, event check-in, webinars,
the CRM) post what people did; each valid item goes to the durable inbox in one INSERT,
each invalid one is reported with its reasons, and the drain scores the rest.

Authentication: `Authorization: Bearer <key>` (a workspace's API key). With a key that
requires it, or whenever the header is sent, `X-Harpoon-Signature` must be a valid HMAC
of the body (crm.api_keys); a signed POST is accepted once, seen again it is refused
(409).
An unsigned request is a bearer credential with no replay window. Posting an item again
with its `external_id` adds nothing.
"""

import functools
import hashlib
import logging

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, request
from marshmallow import ValidationError
from redis.exceptions import RedisError
from sqlalchemy import select, update
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

from app.admin import limiter
from app.extensions import harpoon
from crm.api_keys import first_use_of_signature, key_for, signature_problem
from crm.contacts import live, normalized_identity
from crm.touchpoints import KINDS, MAX_BATCH, TouchpointSchema, api_row, foreign_channels
from models import (
    Account,
    ApiKey,
    Channel,
    ChannelKind,
    Contact,
    Identity,
    InboundEvent,
    Interaction,
    utcnow,
)
from models.base import insert_ignoring_conflicts

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api/v1")

SIGNATURE_HEADER = "X-Harpoon-Signature"
TOUCHPOINTS = TouchpointSchema(many=True)
MAX_BODY_BYTES = 4 * 1024 * 1024
OPENID_NOT_OA = "Not an OA: an openid belongs to an OA."
OPENID_OA_UNKNOWN = "Name the OA of the openid: this workspace has {count}."
EXTERNAL_USERID_NOT_CORP = "Not a WeCom corp: an external_userid belongs to a WeCom corp."
EXTERNAL_USERID_CORP_UNKNOWN = (
    "Name the WeCom corp of the external_userid: this workspace has {count}."
)
# Identities that make a person without a channel.
STANDALONE_IDENTITIES = ("unionid", "phone", "email")
REPLAYED = (
    "this signature was used already: a replay, or the same body signed twice in one second "
    "(sign each request when you send it)"
)


def _error(status: int, message: str, **extra):
    log.info("touchpoint API %s: %s", status, message)
    return {"error": message, **extra}, status


@bp.errorhandler(BadRequest)
@bp.errorhandler(RequestEntityTooLarge)
def _unreadable_body(refused: HTTPException):
    """A body app.inputs refused (and logged), answered in the API's JSON."""
    return {"error": refused.description}, refused.code


def _presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip()
    return request.headers.get("X-Api-Key")


def rate_limit_key() -> str:
    """Limits count per API key (its hash: the key itself never lands in Redis)."""
    presented = _presented_key() or request.remote_addr or ""
    return hashlib.sha256(presented.encode()).hexdigest()[:32]


def _authenticate(session, body: bytes, *, writes: bool):
    """(workspace id, None) for a live key whose signature holds; (None, error answer).

    A signature on a request that `writes` is accepted once; a read (a lookup a client
    polls) may be repeated within the signature's window: it changes nothing."""
    key = key_for(session, _presented_key())
    if key is None:
        return None, _error(401, "missing, unknown or revoked API key")
    if key.require_signature or request.headers.get(SIGNATURE_HEADER):
        problem = signature_problem(key.signing_secret, request.headers.get(SIGNATURE_HEADER), body)
        if problem:
            return None, _error(401, problem)
        if writes and not _first_use(key, request.headers[SIGNATURE_HEADER]):
            return None, _error(409, REPLAYED)
    session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=utcnow()))
    return key.workspace_id, None


def _first_use(key: ApiKey, header: str) -> bool:
    """Redis down lets a signed request through (the database, not Redis, must hold
    ingestion), with a warning: replays go unnoticed meanwhile."""
    h = harpoon()
    try:
        return first_use_of_signature(h.queue.connection, h.settings.queue_prefix, key.id, header)
    except RedisError as exc:
        log.warning("API signature replay check skipped (key %s): %s", key.id, exc)
        return True


@bp.post("/touchpoints")
@limiter.limit(lambda: harpoon().settings.api_rate_limit, key_func=rate_limit_key)
def post_touchpoints():
    h = harpoon()
    request.max_content_length = MAX_BODY_BYTES
    body = request.get_data(cache=True)
    with h.db.session() as session:
        workspace_id, refusal = _authenticate(session, body, writes=True)
        if refusal:
            return refusal
        channels_by_kind = _channels_by_kind(session, workspace_id)
        session.commit()
    document = request.get_json(silent=True)
    items = document.get("items") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        return _error(400, 'the body must be JSON: {"items": [touchpoint, ...]}')
    if len(items) > MAX_BATCH:
        return _error(413, f"at most {MAX_BATCH} items per request, got {len(items)}")
    received = utcnow()
    results, rows = [], []
    checked = _checked(items)
    with h.db.session() as session:
        foreign = foreign_channels(
            session, workspace_id, {index: item for index, item, errors in checked if not errors}
        )
    for index, valid, errors in checked:
        errors = errors or foreign.get(index)
        if not errors:
            try:
                _bind_channels(valid, channels_by_kind)
            except ValidationError as exc:
                errors = exc.messages
        if errors:
            results.append({"index": index, "status": "rejected", "errors": errors})
            continue
        rows.append(api_row(workspace_id, valid, received, h.settings.inbox_lanes))
        results.append({"index": index, "status": None, "key": rows[-1]["dedupe_key"]})
    stored = _store(rows)
    new_lanes = {row["lane"] for row in rows if row["dedupe_key"] in stored}
    for result in results:
        key_of_item = result.pop("key", None)
        if result["status"] is None:
            result["status"] = "accepted" if key_of_item in stored else "duplicate"
            stored.discard(key_of_item)  # the same item twice in one batch: once
        if result["status"] != "rejected":
            result.pop("errors", None)
    counts = {
        status: sum(r["status"] == status for r in results)
        for status in ("accepted", "duplicate", "rejected")
    }
    for lane in sorted(new_lanes):
        h.queue.drain_requests.mark(workspace_id, lane)
    answer = {
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "items": results,
    }
    return answer, 422 if counts["rejected"] == len(items) else 200


def _checked(items: list):
    """(index, valid item, errors) per item: the batch through the schema at once (a third
    faster than item by item, bench/touchpoints.py (a))."""
    try:
        return [(i, item, None) for i, item in enumerate(TOUCHPOINTS.load(items))]
    except ValidationError as exc:
        errors = exc.messages if isinstance(exc.messages, dict) else {}
        return [(i, item, errors.get(i)) for i, item in enumerate(exc.valid_data or [])]


def _channels_by_kind(session, workspace_id: int) -> dict[str, set[int]]:
    """The workspace's channel ids, OAs and WeCom corps apart."""
    found: dict[str, set[int]] = {ChannelKind.OA: set(), ChannelKind.WECOM: set()}
    for channel_id, kind in session.execute(
        select(Channel.id, Channel.kind).where(Channel.workspace_id == workspace_id)
    ):
        found.setdefault(kind, set()).add(channel_id)
    return found


def _bind_channels(item: dict, channels_by_kind: dict[str, set[int]]) -> None:
    """Give the item's channel-bound identity its channel, or refuse the item.

    An openid belongs to one OA, an external_userid to one WeCom corp: the one named in
    `channel_id`, or the workspace's only one. An external_userid must have its corp when
    it is all that names the person (the drain could make no person without it); beside an
    openid it joins the workspace's only corp, and beside another identity it is matched on
    any corp when the corp is not known. That a named channel is the workspace's,
    foreign_channels has checked.
    """
    oa_ids, corp_ids = channels_by_kind[ChannelKind.OA], channels_by_kind[ChannelKind.WECOM]
    named = item.get("channel_id")
    if item.get("openid"):
        item["channel_id"] = _the_channel(named, oa_ids, OPENID_NOT_OA, OPENID_OA_UNKNOWN)
        if item.get("external_userid") and len(corp_ids) == 1:
            item["corp_channel_id"] = next(iter(corp_ids))
    elif item.get("external_userid"):
        standalone = any(item.get(kind) for kind in STANDALONE_IDENTITIES)
        if named is None and len(corp_ids) != 1 and standalone:
            return
        item["channel_id"] = _the_channel(
            named, corp_ids, EXTERNAL_USERID_NOT_CORP, EXTERNAL_USERID_CORP_UNKNOWN
        )


def _the_channel(named: int | None, candidates: set[int], not_one: str, unknown: str) -> int:
    """The named channel when it is one of the candidates, else the only candidate."""
    if named is not None:
        if named not in candidates:
            raise ValidationError({"channel_id": [not_one]})
        return named
    if len(candidates) != 1:
        raise ValidationError({"channel_id": [unknown.format(count=len(candidates))]})
    return next(iter(candidates))


def _store(rows: list[dict]) -> set[str]:
    """Every row in one INSERT ... ON CONFLICT DO NOTHING; the keys that were new."""
    if not rows:
        return set()
    engine = harpoon().db.autocommit_engine
    stmt = insert_ignoring_conflicts(engine.dialect.name, InboundEvent.__table__).returning(
        InboundEvent.dedupe_key
    )
    # executemany with RETURNING: SQLAlchemy sends multi-row INSERTs; pages of 200 rows plan
    # faster than one statement of 1,000 (bench/touchpoints.py (a)).
    with engine.connect().execution_options(insertmanyvalues_page_size=200) as conn:
        return set(conn.scalars(stmt, rows))


LOOKUP_KINDS = ("phone", "email", "openid", "unionid", "external_userid")


@bp.get("/contacts")
@limiter.limit(lambda: harpoon().settings.api_rate_limit, key_func=rate_limit_key)
def find_contacts():
    """The contacts an identity names, with their scores and latest touchpoints (for the
    system that posted them: "did our live stream move this lead?")."""
    given = {k: request.args[k] for k in LOOKUP_KINDS if request.args.get(k)}
    if len(given) != 1:
        return _error(400, f"give exactly one of {', '.join(LOOKUP_KINDS)}")
    [(kind, value)] = given.items()
    with harpoon().db.session() as session:
        # A GET signs its query string, as a POST signs its body.
        workspace_id, refusal = _authenticate(session, request.query_string, writes=False)
        if refusal:
            return refusal
        session.commit()
        found = session.scalars(
            select(Contact)
            .join(Identity, Identity.contact_id == Contact.id)
            .where(
                Identity.workspace_id == workspace_id,
                Identity.kind == kind,
                Identity.value == normalized_identity(kind, value),
            )
            .distinct()
        ).all()
        return {"contacts": [_contact(session, live(session, c)) for c in found]}


def _contact(session, contact: Contact) -> dict:
    account = session.get(Account, contact.account_id) if contact.account_id else None
    latest = session.execute(
        select(Interaction.kind, Interaction.occurred_at, Interaction.engagement_minutes)
        .where(Interaction.contact_id == contact.id)
        .order_by(Interaction.occurred_at.desc())
        .limit(10)
    ).all()
    return {
        "id": contact.id,
        "name": contact.name,
        "title": contact.title,
        "role": contact.role,
        "lead_score": round(contact.lead_score, 2),
        "scored_at": contact.scored_at.isoformat() if contact.scored_at else None,
        "account": None
        if account is None
        else {
            "name": account.name,
            "score": round(account.score, 2),
            "tier": account.tier,
            "mqa": account.mqa,
        },
        "latest": [
            {"kind": kind, "occurred_at": when.isoformat(), "minutes": minutes}
            for kind, when, minutes in latest
        ],
    }


@bp.get("/openapi.json")
def openapi():
    return openapi_document()


@functools.cache
def openapi_document() -> dict:
    spec = APISpec(
        title="Harpoon touchpoint API",
        version="1",
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={
            "description": "Post what people did outside WeChat's callbacks: email, live "
            "streams, offline events, webinars, meetings. Kinds:\n\n"
            + "\n".join(f"- `{kind}`: {meaning}" for kind, meaning in KINDS.items())
        },
    )
    spec.components.security_scheme("apiKey", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Touchpoint", schema=TouchpointSchema)
    item_result = {
        "type": "object",
        "properties": {
            "index": {"type": "integer"},
            "status": {"type": "string", "enum": ["accepted", "duplicate", "rejected"]},
            "errors": {
                "type": "object",
                "description": "Field -> messages (only for a rejected item). Among them, "
                "on `channel_id`: the channel is not the workspace's; an openid's channel is "
                "not an OA; an external_userid's channel is not a WeCom corp; or the item "
                "names an openid, or only an external_userid, without its channel while the "
                "workspace has no or several OAs / WeCom corps.",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
                "examples": [
                    {"channel_id": [EXTERNAL_USERID_CORP_UNKNOWN.format(count=2)]},
                ],
            },
        },
    }
    answer = {
        "type": "object",
        "properties": {
            "accepted": {"type": "integer"},
            "duplicates": {"type": "integer"},
            "rejected": {"type": "integer"},
            "items": {"type": "array", "items": item_result},
        },
    }
    error = {"type": "object", "properties": {"error": {"type": "string"}}}
    spec.path(
        path="/api/v1/touchpoints",
        operations={
            "post": {
                "summary": f"Record up to {MAX_BATCH} touchpoints",
                "security": [{"apiKey": []}],
                "parameters": [
                    {
                        "name": SIGNATURE_HEADER,
                        "in": "header",
                        "required": False,
                        "description": "t=<unix seconds>,v1=<hex HMAC-SHA256(signing secret, "
                        '"<t>." + body)>; required by keys that require signatures, '
                        "checked whenever sent; at most 5 minutes old; each signature "
                        "is accepted once.",
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["items"],
                                "properties": {
                                    "items": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": MAX_BATCH,
                                        "items": {"$ref": "#/components/schemas/Touchpoint"},
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "Per item: accepted, duplicate (its external_id was "
                        "posted before) or rejected with its errors.",
                        "content": {"application/json": {"schema": answer}},
                    },
                    "400": {
                        "description": "Not JSON, no items list, or a NUL character in it.",
                        "content": {"application/json": {"schema": error}},
                    },
                    "401": {
                        "description": "Bad API key or signature.",
                        "content": {"application/json": {"schema": error}},
                    },
                    "409": {
                        "description": "The signature was used already (a replay): nothing "
                        "was stored.",
                        "content": {"application/json": {"schema": error}},
                    },
                    "413": {"description": f"More than {MAX_BATCH} items, or a body over 4 MB."},
                    "422": {
                        "description": "Every item was rejected (same body as 200).",
                        "content": {"application/json": {"schema": answer}},
                    },
                    "429": {"description": "Too many requests for this key."},
                },
            }
        },
    )
    spec.path(
        path="/api/v1/contacts",
        operations={
            "get": {
                "summary": "The contacts an identity names: lead score, account, latest "
                "touchpoints",
                "security": [{"apiKey": []}],
                "parameters": [
                    {"name": kind, "in": "query", "required": False, "schema": {"type": "string"}}
                    for kind in LOOKUP_KINDS
                ],
                "responses": {
                    "200": {"description": '{"contacts": [...]}, empty when nobody matches.'},
                    "400": {"description": "Not exactly one identity given."},
                    "401": {"description": "Bad API key or signature."},
                },
            }
        },
    )
    return spec.to_dict()
