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
import json
import logging
from decimal import Decimal

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, request
from marshmallow import ValidationError
from redis.exceptions import RedisError
from sqlalchemy import select, update
from werkzeug.exceptions import BadRequest, HTTPException, RequestEntityTooLarge

from app.admin import limiter
from app.extensions import harpoon
from core.jobs import Job
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
from outreach import email_events
from revenue import crm_sync
from revenue.opportunities import OpportunitySchema
from revenue.pipeline import stage_by_key
from scoring.engine import load_model

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
    log.info("API %s %s: %s", request.endpoint, status, message)
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


# ---- email: bounces and complaints ---------------------------------------------------------

EMAIL_REPORTS = email_events.ReportSchema()
MAX_EMAIL_REPORTS = 1000
NOT_A_REPORT_LIST = 'the body must be JSON: {"items": [{"type": "bounce", "email": ...}, ...]}'


@bp.post("/email/reports")
@limiter.limit(lambda: harpoon().settings.api_rate_limit, key_func=rate_limit_key)
def post_email_reports():
    """Bounces and complaints an email provider reported, each item on its own: a hard
    bounce or a complaint suppresses the address and marks the message bounced."""
    h = harpoon()
    request.max_content_length = MAX_BODY_BYTES
    body = request.get_data(cache=True)
    with h.db.session() as session:
        workspace_id, refusal = _authenticate(session, body, writes=True)
        if refusal:
            return refusal
        session.commit()
    document = request.get_json(silent=True)
    items = document.get("items") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        return _error(400, NOT_A_REPORT_LIST)
    if len(items) > MAX_EMAIL_REPORTS:
        return _error(413, f"at most {MAX_EMAIL_REPORTS} items per request, got {len(items)}")
    results, lanes = [], set()
    with h.db.session() as session:
        for index, item in enumerate(items):
            try:
                valid = EMAIL_REPORTS.load(item)
            except ValidationError as exc:
                errors = (
                    exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
                )
                results.append({"index": index, "status": "rejected", "errors": errors})
                continue
            result = email_events.record_report(
                session, workspace_id, email_events.Report(**valid), lanes=h.settings.inbox_lanes
            )
            answer = {"index": index, "status": result.status}
            if result.address:
                answer["email"] = result.address
            if result.message is not None:
                answer["token"] = result.message.token
            results.append(answer)
            if result.lane is not None:
                lanes.add(result.lane)
        session.commit()
    for lane in sorted(lanes):
        h.queue.drain_requests.mark(workspace_id, lane)
    statuses = ("suppressed", "recorded", "unknown", "rejected")
    counts = {status: sum(r["status"] == status for r in results) for status in statuses}
    return {**counts, "items": results}, 422 if counts["rejected"] == len(items) else 200


# ---- opportunities: the CRM's deals ---------------------------------------------------------

NOT_AN_ITEM_LIST = 'the body must be JSON: {"items": [{"external_id": ..., ...}, ...]}'
NOT_AN_OPPORTUNITY = "the body must be a JSON object: one opportunity"


def _decimal_json(body: bytes):
    """The body's JSON with its numbers read as Decimal (0.1 stays 0.1, not a binary
    float); None when it is not JSON. get_json has refused a NUL, a lone surrogate and a
    too deep nesting in it already."""
    request.get_json(force=True, silent=True)
    try:
        return json.loads(body, parse_float=Decimal)
    except (ValueError, RecursionError):
        return None


def _item_answer(index: int | None, external_id, result: crm_sync.ItemResult) -> dict:
    answer = {} if index is None else {"index": index}
    answer |= {"external_id": external_id, "status": result.status}
    if result.errors:
        answer["errors"] = result.errors
    if result.warnings:
        answer["warnings"] = result.warnings
    return answer


@bp.put("/opportunities/<external_id>")
@limiter.limit(lambda: harpoon().settings.api_rate_limit, key_func=rate_limit_key)
def put_opportunity(external_id: str):
    """Create or update one opportunity by the CRM's id; the same body again changes
    nothing ("unchanged")."""
    h = harpoon()
    request.max_content_length = MAX_BODY_BYTES
    body = request.get_data(cache=True)
    with h.db.session() as session:
        workspace_id, refusal = _authenticate(session, body, writes=True)
        if refusal:
            return refusal
        session.commit()
    document = _decimal_json(body)
    if not isinstance(document, dict):
        return _error(400, NOT_AN_OPPORTUNITY)
    if "external_id" in document and document["external_id"] == external_id:
        document = {k: v for k, v in document.items() if k != "external_id"}
    with h.db.session() as session:
        result = crm_sync.sync_item(session, workspace_id, external_id, document)
        if result.status == "rejected":
            session.rollback()
            return {"status": "rejected", "errors": result.errors, "warnings": result.warnings}, 422
        answer = _item_answer(None, external_id, result)
        answer["opportunity"] = crm_sync.opportunity_document(session, result.opportunity)
        session.commit()
    if result.status != "unchanged":
        h.queue.request_followups({(Job.ATTRIBUTE_OPPORTUNITIES, workspace_id)})
    return answer, 201 if result.status == "created" else 200


@bp.post("/opportunities")
@limiter.limit(lambda: harpoon().settings.api_rate_limit, key_func=rate_limit_key)
def post_opportunities():
    """Up to MAX_BATCH opportunities, each created, updated, unchanged or rejected on its
    own; an external id named twice is applied twice, in order (the second sees the first)."""
    h = harpoon()
    request.max_content_length = MAX_BODY_BYTES
    body = request.get_data(cache=True)
    with h.db.session() as session:
        workspace_id, refusal = _authenticate(session, body, writes=True)
        if refusal:
            return refusal
        session.commit()
    document = _decimal_json(body)
    items = document.get("items") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        return _error(400, NOT_AN_ITEM_LIST)
    if len(items) > crm_sync.MAX_BATCH:
        return _error(413, f"at most {crm_sync.MAX_BATCH} items per request, got {len(items)}")
    results = []
    with h.db.session() as session:
        stages = stage_by_key(session, workspace_id)
        account_stages = load_model(session, workspace_id).stages
        for index, item in enumerate(items):
            external_id = item.get("external_id") if isinstance(item, dict) else None
            fields = {k: v for k, v in item.items() if k != "external_id"} if external_id else item
            result = crm_sync.sync_item(
                session,
                workspace_id,
                external_id,
                fields,
                stages=stages,
                account_stages=account_stages,
            )
            results.append(_item_answer(index, external_id, result))
        session.commit()
    counts = {
        status: sum(r["status"] == status for r in results)
        for status in ("created", "updated", "unchanged", "rejected")
    }
    if counts["created"] or counts["updated"]:
        h.queue.request_followups({(Job.ATTRIBUTE_OPPORTUNITIES, workspace_id)})
    return {**counts, "items": results}, 422 if counts["rejected"] == len(items) else 200


@bp.get("/opportunities/<external_id>")
@limiter.limit(lambda: harpoon().settings.api_rate_limit, key_func=rate_limit_key)
def get_opportunity(external_id: str):
    with harpoon().db.session() as session:
        # A GET signs its query string (empty here), as a POST signs its body.
        workspace_id, refusal = _authenticate(session, request.query_string, writes=False)
        if refusal:
            return refusal
        session.commit()
        if crm_sync.external_id_problem(external_id):
            return _error(404, "no opportunity with this external_id")
        found = crm_sync.find_opportunity(session, workspace_id, external_id)
        if found is None:
            return _error(404, "no opportunity with this external_id")
        return {"opportunity": crm_sync.opportunity_document(session, found)}


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
        title="Harpoon API: touchpoints and opportunities",
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
    _opportunity_paths(spec, error)
    _email_paths(spec, error)
    return spec.to_dict()


def _email_paths(spec: APISpec, error: dict) -> None:
    spec.components.schema("EmailReport", schema=email_events.ReportSchema)
    statuses = ["suppressed", "recorded", "unknown", "rejected"]
    item_result = {
        "type": "object",
        "properties": {
            "index": {"type": "integer"},
            "status": {
                "type": "string",
                "enum": statuses,
                "description": "suppressed: the address is mailed no more (a hard bounce, a "
                "complaint); recorded: a soft bounce, noted on the message; unknown: no such "
                "message, and no address given; rejected: see errors.",
            },
            "email": {"type": "string"},
            "token": {"type": "string", "description": "The message it matched."},
            "errors": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
            },
        },
    }
    answer = {
        "type": "object",
        "properties": {
            **{status: {"type": "integer"} for status in statuses},
            "items": {"type": "array", "items": item_result},
        },
    }
    spec.path(
        path="/api/v1/email/reports",
        operations={
            "post": {
                "summary": f"Report up to {MAX_EMAIL_REPORTS} email bounces and complaints",
                "security": [{"apiKey": []}],
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
                                        "maxItems": MAX_EMAIL_REPORTS,
                                        "items": {"$ref": "#/components/schemas/EmailReport"},
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "200": {
                        "description": "Per item: suppressed, recorded, unknown or rejected.",
                        "content": {"application/json": {"schema": answer}},
                    },
                    "400": {
                        "description": "Not JSON, or no items list.",
                        "content": {"application/json": {"schema": error}},
                    },
                    "401": {"description": "Bad API key or signature."},
                    "409": {"description": "The signature was used already (a replay)."},
                    "413": {"description": f"More than {MAX_EMAIL_REPORTS} items."},
                    "422": {
                        "description": "Every item was rejected (same body as 200).",
                        "content": {"application/json": {"schema": answer}},
                    },
                    "429": {"description": "Too many requests for this key."},
                },
            }
        },
    )


def _opportunity_paths(spec: APISpec, error: dict) -> None:
    spec.components.schema("Opportunity", schema=OpportunitySchema)
    messages = {
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
    }
    external_id = {
        "type": "string",
        "pattern": "^" + crm_sync.EXTERNAL_ID.pattern + "$",
        "description": "The CRM's id of the deal: " + crm_sync.BAD_EXTERNAL_ID,
    }
    stored = {
        "type": "object",
        "description": "The stored opportunity; `amount` is a decimal string (CNY).",
        "properties": {
            "id": {"type": "integer"},
            "external_id": {"type": "string"},
            "name": {"type": "string"},
            "amount": {"type": "string", "examples": ["120000.10"]},
            "type": {"type": "string"},
            "stage": {"type": "string"},
            "probability": {"type": "integer"},
            "status": {"type": "string", "enum": ["open", "won", "lost"]},
            "lost_reason": {"type": ["string", "null"]},
            "opened_at": {"type": "string", "format": "date-time"},
            "closed_at": {"type": ["string", "null"], "format": "date-time"},
            "account": {"type": "object"},
            "owner_email": {"type": ["string", "null"]},
        },
    }
    statuses = ["created", "updated", "unchanged", "rejected"]
    item_result = {
        "type": "object",
        "properties": {
            "index": {"type": "integer"},
            "external_id": {"type": "string"},
            "status": {"type": "string", "enum": statuses},
            "errors": {
                **messages,
                "description": "Field -> messages, for a rejected item. An account named "
                "by `account_id`, `account_name` or `account_domain` that the workspace does "
                "not have is an error unless `create_account` is true (by name); so is a "
                "stage not in the workspace's pipeline.",
            },
            "warnings": {
                **messages,
                "description": "Saved anyway: e.g. `owner_email` names no user of the "
                "workspace (saved without an owner).",
            },
        },
    }
    json_of = lambda schema: {"application/json": {"schema": schema}}  # noqa: E731
    auth = {
        "security": [{"apiKey": []}],
        "parameters": [
            {
                "name": SIGNATURE_HEADER,
                "in": "header",
                "required": False,
                "description": "As for /api/v1/touchpoints: HMAC of the body (of the "
                "query string for a GET); each signature of a PUT or POST is accepted once.",
                "schema": {"type": "string"},
            }
        ],
    }
    path_id = {"name": "external_id", "in": "path", "required": True, "schema": external_id}
    common = {
        "401": {"description": "Bad API key or signature.", "content": json_of(error)},
        "409": {
            "description": "The signature was used already (a replay).",
            "content": json_of(error),
        },
        "429": {"description": "Too many requests for this key."},
    }
    spec.path(
        path="/api/v1/opportunities/{external_id}",
        operations={
            "put": {
                "summary": "Create or update one opportunity by the CRM's id (idempotent)",
                "description": "Amounts are decimals (a JSON number or string, at most 2 "
                "places), read exactly, never as binary floats. On an update every field is "
                "optional. Sending the same body again answers `unchanged` and writes "
                "nothing. A stage moves the account's stage forward, with history.",
                **auth,
                "parameters": [path_id, *auth["parameters"]],
                "requestBody": {
                    "required": True,
                    "content": json_of({"$ref": "#/components/schemas/Opportunity"}),
                },
                "responses": {
                    "200": {
                        "description": "`updated` or `unchanged`, with the stored opportunity "
                        "and any warnings.",
                        "content": json_of(
                            {
                                "type": "object",
                                "properties": {
                                    "external_id": {"type": "string"},
                                    "status": {"type": "string", "enum": statuses[1:3]},
                                    "warnings": item_result["properties"]["warnings"],
                                    "opportunity": stored,
                                },
                            }
                        ),
                    },
                    "201": {"description": "`created` (same body as 200)."},
                    "400": {"description": "Not a JSON object.", "content": json_of(error)},
                    "422": {
                        "description": "Rejected: `errors` field -> messages; nothing was written.",
                        "content": json_of(item_result),
                    },
                    **common,
                },
            },
            "get": {
                "summary": "The stored opportunity with this external id",
                **auth,
                "parameters": [path_id, *auth["parameters"]],
                "responses": {
                    "200": {
                        "description": '{"opportunity": {...}}',
                        "content": json_of(
                            {"type": "object", "properties": {"opportunity": stored}}
                        ),
                    },
                    "404": {"description": "None with this external id in the workspace."},
                    "401": common["401"],
                    "429": common["429"],
                },
            },
        },
    )
    batch_item = {
        "allOf": [
            {"$ref": "#/components/schemas/Opportunity"},
            {
                "type": "object",
                "required": ["external_id"],
                "properties": {"external_id": external_id},
            },
        ]
    }
    spec.path(
        path="/api/v1/opportunities",
        operations={
            "post": {
                "summary": f"Create or update up to {crm_sync.MAX_BATCH} opportunities",
                "description": "Each item on its own: one rejected item never blocks the "
                "others. An external id named twice is applied twice, in order.",
                **auth,
                "requestBody": {
                    "required": True,
                    "content": json_of(
                        {
                            "type": "object",
                            "required": ["items"],
                            "properties": {
                                "items": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": crm_sync.MAX_BATCH,
                                    "items": batch_item,
                                }
                            },
                        }
                    ),
                },
                "responses": {
                    "200": {
                        "description": "Counts per status, and per item its result.",
                        "content": json_of(
                            {
                                "type": "object",
                                "properties": {
                                    **{s: {"type": "integer"} for s in statuses},
                                    "items": {"type": "array", "items": item_result},
                                },
                            }
                        ),
                    },
                    "400": {
                        "description": "Not JSON, or no items list.",
                        "content": json_of(error),
                    },
                    "413": {"description": f"More than {crm_sync.MAX_BATCH} items, or over 4 MB."},
                    "422": {"description": "Every item was rejected (same body as 200)."},
                    **common,
                },
            }
        },
    )
