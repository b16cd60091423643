"""Callback endpoints for WeChat OA and WeCom.

Verify, store in the inbox, ask for a drain, answer `success`: nothing else
happens inside WeChat's 5-second deadline. A refused request gets a 4xx and
one log line, and nothing is stored.

They run as an app of their own (app.callback_app), mounted at MOUNT: the routes
below answer `/callbacks/wechat/<id>` and `/callbacks/wecom/<id>`.
"""

import logging

from flask import Blueprint, Response, abort, request
from sqlalchemy import update

from app.extensions import ChannelKeys, harpoon
from models import Channel, utcnow
from pipeline.inbox import callback_lane
from wechat import callbacks as protocol
from wechat.callbacks import OA, WECOM, CallbackQuery, CallbackRejected
from wechat.events import Unnormalizable, normalize_fields

bp = Blueprint("callbacks", __name__)
MOUNT = "/callbacks"
log = logging.getLogger(__name__)


@bp.route("/wechat/<int:channel_id>", methods=["GET", "POST"])
def wechat(channel_id: int):
    return _callback(channel_id, OA)


@bp.route("/wecom/<int:channel_id>", methods=["GET", "POST"])
def wecom(channel_id: int):
    return _callback(channel_id, WECOM)


def _callback(channel_id: int, platform: str):
    h = harpoon()
    channel = h.channels.get(channel_id)
    if channel is None or channel.kind != platform:
        _log_refusal(channel_id, 404, "no such channel")
        abort(404)
    query = protocol.parse_query(request.query_string)
    max_age = h.settings.callback_max_age_seconds
    try:
        if request.method == "GET":
            answer = _verify_url(channel, query)
            protocol.check_fresh(query.timestamp, max_age)
            _mark_verified(channel.id)
            return _text(answer)
        request.max_content_length = h.settings.callback_max_bytes
        body = request.get_data(cache=False)  # over the limit or malformed: app.inputs refuses
        xml = _open_message(channel, query, body)  # signature first, then decryption
        protocol.check_fresh(query.timestamp, max_age)
        fields = protocol.parse_xml(xml)  # the one parse: normalization reads these fields
        _check_normalizable(platform, fields)
    except CallbackRejected as rejected:
        _log_refusal(channel_id, rejected.status, rejected.reason)
        return _text(rejected.reason, rejected.status)

    stored = h.inbox.store(
        workspace_id=channel.workspace_id,
        channel_id=channel.id,
        platform=platform,
        dedupe_key=protocol.dedupe_key(platform, fields, xml),
        payload=xml,
        lane=(lane := callback_lane(platform, fields, h.settings.inbox_lanes)),
    )
    if stored:
        h.queue.drain_requests.mark(channel.workspace_id, lane)
    if platform == OA:
        reply = _passive_reply(channel, query, fields)
        if reply:
            return Response(reply, mimetype="application/xml")
    return _text("success")


def _check_normalizable(platform: str, fields: dict) -> None:
    """Refuse what the drain could never read: it would fail there on every retry."""
    try:
        normalize_fields(platform, fields)
    except Unnormalizable as problem:
        raise CallbackRejected(400, f"cannot be normalized: {problem}") from None


def _passive_reply(channel: ChannelKeys, query: CallbackQuery, fields: dict) -> str | None:
    """A keyword or menu rule's reply, or a channel QR code's welcome to a follow or scan
    through it, sent back inside this request (no API call)."""
    replies = harpoon().replies.get(channel.workspace_id)
    event = fields.get("Event") if fields.get("MsgType") == "event" else None
    if fields.get("MsgType") == "text":
        content = replies.reply_to("wechat.message", fields.get("Content"))
    elif event == "CLICK":
        content = replies.reply_to("wechat.menu_click", fields.get("EventKey"))
    elif event in ("subscribe", "SCAN"):
        content = replies.welcome(channel.id, event, fields.get("EventKey"))
    else:
        return None
    if not content:
        return None
    return protocol.oa_text_reply(
        fields,
        content,
        token=channel.token,
        aes_key=channel.aes_keys[0] if channel.aes_keys else None,
        app_id=channel.app_id,
        encrypted=query.encrypt_type == "aes",
    )


def _verify_url(channel: ChannelKeys, query: CallbackQuery) -> str:
    if channel.kind == OA:
        return protocol.verify_oa_url(channel.token, query)
    return protocol.verify_wecom_url(channel.token, channel.aes_keys, channel.app_id, query)


def _open_message(channel: ChannelKeys, query: CallbackQuery, body: bytes) -> str:
    if channel.kind == OA:
        return protocol.open_oa_message(
            body,
            query,
            token=channel.token,
            aes_keys=channel.aes_keys,
            app_id=channel.app_id,
            mode=channel.message_mode,
        )
    return protocol.open_wecom_message(
        body, query, token=channel.token, aes_keys=channel.aes_keys, corp_id=channel.app_id
    )


def _mark_verified(channel_id: int) -> None:
    with harpoon().db.session() as session:
        session.execute(
            update(Channel).where(Channel.id == channel_id).values(verified_at=utcnow())
        )
        session.commit()


def _log_refusal(channel_id: int, status: int, reason: str) -> None:
    log.warning(
        "callback refused channel=%s status=%s reason=%s remote=%s",
        channel_id,
        status,
        reason,
        request.remote_addr,
    )


def _text(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/plain")
