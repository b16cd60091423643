"""Harpoon inside WeCom: member sign-in and the chat sidebar's shell.

- `GET /wecom/<channel_id>/signin?next=<local path>`: WeCom's member OAuth (silent), then
  the member's mapped admin user is signed in (the admin's own session); no password in
  WeCom's browser. A member who maps to no active user gets a page saying so, and the
  admin's Staff page lists them (sales/member_sign_in.py).
- `GET /wecom/<channel_id>/sidebar`: the chat-toolbar page (375 px). It registers
  `@wecom/jssdk` with signatures from `POST /wecom/<channel_id>/jsapi/signature` (JSON
  {url} -> {config, agentConfig}, each {timestamp, nonceStr, signature}), asks
  `getContext`, then loads the panel for the chat into `#panel`:
  `GET /wecom/panel/<channel_id>/contact/<external_userid>` in a one-to-one chat (or a
  contact's profile), `GET /wecom/panel/<channel_id>/group/<chat_id>` in a customer group.
  Anything that does not check out (a refused signature, not opened from a chat, the panel
  answering 403/404) leaves a refusal and nothing of the person.

The panel contract (app/static/wecom-sidebar.js implements it; panel fragments use it):
  (a) a click on an element with `data-send-card` (JSON {"title","desc","link","imgUrl"})
      puts a link card into the chat (`ww.sendChatMessage`, msgtype "news"); once the
      client says ok, the shell POSTs to the element's `data-sent-url` (form-encoded, with
      `csrf_token`) and reloads the panel; a refusal is shown above the panel.
  (b) a `form[data-panel-form]` is submitted with fetch (its FormData, with `csrf_token`
      added); the answer's HTML (200 or 422) replaces `#panel`.
  (c) a click on `a[data-panel-link]` loads its href into `#panel`.
  Fragments are plain HTML: no script runs in them (the page's CSP allows none inline).
  The shell's `<meta name="csrf-token">` holds the CSRF token.
- `GET /wecom/<channel_id>/posters`: 我的海报, the signed-in salesperson's own posters (a
  phone page; an image is long-press-saved), each composed for them alone by
  `GET /wecom/<channel_id>/posters/<poster_id>.png`: their share link or their 联系我 code.
"""

import io
import logging
import secrets
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_user

from app.admin import db, limiter
from app.admin.auth import safe_path
from app.extensions import harpoon
from core.tokens import Purpose, TokenError
from models import Channel, ChannelKind, Poster, SignInRefusal, Staff, utcnow
from outreach import posters
from sales.member_sign_in import forget_refused, record_refused, user_for_member
from sales.staff import staff_of_user
from wechat.clients import WeChatApiError, sign_jsapi

log = logging.getLogger(__name__)

bp = Blueprint("wecom_app", __name__, url_prefix="/wecom")

STATE_COOKIE = "hp_wecom_oauth"
# Each return costs an outbound auth/getuserinfo call (WeCom limits them per app): per
# client address, room for an office behind one NAT signing in at nine.
OAUTH_RETURN_LIMIT = "30 per minute"
JS_API_LIST = [
    "getContext",
    "getCurExternalContact",
    "getCurExternalChat",
    "sendChatMessage",
]


def _channel(channel_id: int) -> Channel:
    """A WeCom channel with an app (agent) to sign in through; 404 otherwise."""
    channel = db().get(Channel, channel_id)
    if (
        channel is None
        or channel.kind != ChannelKind.WECOM
        or not (channel.agent_id and channel.agent_secret)
    ):
        abort(404)
    return channel


def _app_client(channel: Channel):
    return harpoon().wechat.wecom(channel.app_id, channel.agent_secret)


def _signed_in_to(channel: Channel) -> bool:
    return current_user.is_authenticated and current_user.workspace_id == channel.workspace_id


def _local(target) -> bool:
    return isinstance(target, str) and safe_path(target, "/")


def _page(template: str, status: int = 200, **context):
    return render_template(template, **context), status


def _refused(message: str, status: int, **context):
    return _page("wecom/refused.html", status, message=message, **context)


@bp.get("/<int:channel_id>/signin")
def signin(channel_id: int):
    channel = _channel(channel_id)
    target = request.args.get("next") or url_for("admin.dashboard")
    if not _local(target):
        return _refused(_("This sign-in link leads off Harpoon: it was not followed."), 400)
    h = harpoon()
    nonce = secrets.token_urlsafe(16)
    context = h.signer.sign(Purpose.OAUTH_STATE, {"n": nonce, "ch": channel.id, "next": target})
    redirect_uri = h.public_url(url_for(".oauth_return", channel_id=channel.id))
    response = redirect(
        h.wechat.wecom_authorize_url(channel.app_id, channel.agent_id, redirect_uri, nonce)
    )
    response.set_cookie(
        STATE_COOKIE,
        context,
        max_age=600,
        path="/wecom/",
        httponly=True,
        samesite="Lax",
        secure=h.settings.secure_cookies,
    )
    return response


@bp.get("/<int:channel_id>/oauth")
@limiter.limit(OAUTH_RETURN_LIMIT)
def oauth_return(channel_id: int):
    """WeCom sends the member back with a single-use code and our state."""
    channel = _channel(channel_id)
    h = harpoon()
    try:
        context = h.signer.verify(Purpose.OAUTH_STATE, request.cookies.get(STATE_COOKIE))
    except TokenError as exc:
        log.info("WeCom sign-in refused: state cookie %s", exc.reason)
        return _refused(_("This sign-in has expired. Open the page in WeCom again."), 400)
    state = request.args.get("state", "")
    if (
        not state
        or not secrets.compare_digest(state, str(context.get("n", "")))
        or context.get("ch") != channel.id
        or not _local(context.get("next"))
    ):
        log.info("WeCom sign-in refused: state does not match this browser's")
        return _refused(_("This sign-in has expired. Open the page in WeCom again."), 400)
    try:
        member = _app_client(channel).member(request.args.get("code", ""))
    except WeChatApiError as exc:
        log.info("WeCom sign-in refused: getuserinfo answered %s", exc)
        if exc.errcode == 40029:
            return _refused(_("This sign-in has expired. Open the page in WeCom again."), 400)
        return _refused(_("WeCom could not say who you are. Try again in a moment."), 502)
    outcome = user_for_member(db(), channel, member.userid)
    if outcome.user is None:
        who = member.userid or member.openid
        record_refused(db(), channel, who, outcome.refusal, request.remote_addr or "")
        db().commit()
        log.info("WeCom sign-in refused for %s on channel %s: %s", who, channel.id, outcome.refusal)
        return _page(
            "wecom/unmapped.html",
            403,
            channel=channel,
            member=member,
            staff=outcome.staff,
            refusal=outcome.refusal,
            REFUSAL=SignInRefusal,
        )
    user = outcome.user
    forget_refused(db(), channel.workspace_id, channel.id, member.userid)
    user.last_login_at = utcnow()
    db().commit()
    session.clear()  # a fresh session on sign-in: no fixation
    login_user(user)
    response = redirect(context["next"])
    response.delete_cookie(STATE_COOKIE, path="/wecom/")
    return response


def _bridge_url() -> str:
    """The sandbox's client bridge, when Harpoon talks to the sandbox (the real WeCom client
    injects its own)."""
    base = harpoon().settings.wechat_api_url
    return f"{base}/sandbox/wecom/bridge.js" if base else ""


@bp.get("/<int:channel_id>/sidebar")
def sidebar(channel_id: int):
    channel = _channel(channel_id)
    if not _signed_in_to(channel):
        return redirect(url_for(".signin", channel_id=channel.id, next=request.full_path))
    return render_template(
        "wecom/sidebar.html",
        channel=channel,
        bridge_url=_bridge_url(),
        js_api_list=JS_API_LIST,
        panel_base=f"/wecom/panel/{channel.id}",
    )


@bp.post("/<int:channel_id>/jsapi/signature")
def jsapi_signature(channel_id: int):
    """Signatures of `url` for ww.register: `config` (corp ticket), `agentConfig` (app's)."""
    channel = _channel(channel_id)
    if not _signed_in_to(channel):
        return jsonify(error=_("Sign in again from WeCom.")), 401
    data = request.get_json(silent=True)
    url = data.get("url") if isinstance(data, dict) else None
    parts = urlsplit(url) if isinstance(url, str) and len(url) <= 2000 else None
    if parts is None or parts.scheme not in ("http", "https") or parts.netloc != request.host:
        return jsonify(error=_("Only this site's pages are signed.")), 400
    client = _app_client(channel)
    try:
        corp_ticket, agent_ticket = client.corp_jsapi_ticket(), client.agent_jsapi_ticket()
    except WeChatApiError as exc:
        log.warning("JS-SDK ticket for channel %s refused: %s", channel.id, exc)
        return jsonify(error=_("WeCom refused the page's signature. Try again later.")), 502
    return jsonify(config=sign_jsapi(corp_ticket, url), agentConfig=sign_jsapi(agent_ticket, url))


# ---- 我的海报: a salesperson's own posters ---------------------------------------------------


def _me(channel: Channel) -> Staff | None:
    """The signed-in user's staff record on this corp (None: they sell through no member)."""
    return staff_of_user(db(), channel.workspace_id, channel.id, current_user.id)


@bp.get("/<int:channel_id>/posters")
def my_posters(channel_id: int):
    channel = _channel(channel_id)
    if not _signed_in_to(channel):
        return redirect(url_for(".signin", channel_id=channel.id, next=request.full_path))
    me = _me(channel)
    rows = posters.posters_of(db(), channel.workspace_id) if me is not None else []
    usable = [row for row in rows if posters.usable_by(db(), row, me)]
    return render_template("wecom/posters.html", channel=channel, me=me, rows=usable)


@bp.get("/<int:channel_id>/posters/<int:poster_id>.png")
def my_poster_png(channel_id: int, poster_id: int):
    """The signed-in salesperson's own version of a poster: never anyone else's."""
    channel = _channel(channel_id)
    if not _signed_in_to(channel):
        abort(401)
    me = _me(channel)
    poster = db().get(Poster, poster_id)
    if (
        me is None
        or poster is None
        or poster.workspace_id != channel.workspace_id
        or poster.archived_at is not None
    ):
        abort(404)
    h = harpoon()
    try:
        png = posters.poster_png(
            db(),
            poster,
            posters.staff_person(me),
            signer=h.signer,
            base_url=h.settings.public_base_url,
            font_path=h.settings.poster_font_path,
            sandbox_url=h.settings.wechat_api_url,
        )
    except posters.CodePictureUnavailable:
        message = _(posters.UNAVAILABLE)
        unavailable = posters.unavailable_png(poster, message, h.settings.poster_font_path)
        response = send_file(io.BytesIO(unavailable), mimetype="image/png")
        response.status_code = 503
        response.headers["Cache-Control"] = "no-store"
        return response
    if png is None:
        abort(404)
    db().commit()  # the render's cache row
    response = send_file(io.BytesIO(png), mimetype="image/png")
    response.headers["Cache-Control"] = "private, max-age=600"
    return response
