"""The WeCom client in the sandbox: member sign-in, JS-SDK tickets and the chat toolbar.

API (qyapi.weixin.qq.com, under /wecom):
- `GET /cgi-bin/get_jsapi_ticket` (the corp's ticket) and `GET /cgi-bin/ticket/get?type=
  agent_config` (the app's): 7200 s each, the same ticket while it lives, every fetch
  counted against the corp (`Sandbox.JSAPI_TICKETS_PER_HOUR_PER_CORP`, about 400 an hour)
  and the app (`JSAPI_TICKETS_PER_HOUR_PER_APP`, 100): beyond, 45009. Only the app's access
  token (agent secret) may fetch them (48002 otherwise).
- `GET /cgi-bin/auth/getuserinfo?code=`: a member OAuth code (single use, 5 minutes; 40029
  otherwise) -> `userid` for a member of the corp, `openid` for anyone else.

Member OAuth (open.weixin.qq.com's `connect/oauth2/authorize` with a corp id as appid; oa.py
hands those to `member_authorize`). Who is signed in to WeCom is the sandbox's to be told:
a `userid` query parameter, else the member whose client page this browser opened last (a
cookie), else a form that asks.

The client (under /sandbox/wecom):
- `GET /client?corp_id=&userid=&external_userid=` (or `&chat_id=` for a customer group): a
  phone-sized page with the open chat and, beside it, the corp's chat-toolbar page in an
  iframe, set by `POST /toolbar {corp_id, url}` (its host becomes the app's trusted domain:
  OAuth redirects elsewhere get 50001).
- `GET /bridge.js`: the client bridge (`window.WeixinJSBridge`) the toolbar page includes,
  as the real client injects it; it forwards each call to the client page (postMessage,
  origins checked both ways). The page checks `agentConfig` (and `config`) signatures with
  `POST /client/verify` against the tickets issued to that corp and app and the iframe's
  URL; until one passes, every chat API is refused ("no permission").
- `POST /client/send`: what `sendChatMessage` puts into the open chat, kept per chat and
  shown in `/sandbox/state` (`chats`) and on the page; `POST /limits` changes the ticket
  limits.
"""

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for

from wechat.sandbox.core import WECOM, ApiError, Tenant, ok, sandbox
from wechat.sandbox.wecom import AGENT_SECRET, SlidingWindow, authenticated, state_of

api_bp = Blueprint("sandbox_wecom_client_api", __name__, url_prefix="/wecom")
client_bp = Blueprint(
    "sandbox_wecom_client",
    __name__,
    url_prefix="/sandbox/wecom",
    template_folder="templates",
    static_folder="static",
)

TICKET_SECONDS = 7200
MEMBER_CODE_SECONDS = 300
MEMBER_COOKIE = "sandbox_wecom_member"
SINGLE_CHAT, GROUP_CHAT = "single_chat_tools", "group_chat_tools"
CHAT_MESSAGE_TYPES = ("text", "image", "video", "file", "news", "miniprogram")
CHAT_MESSAGES_KEPT = 200


@dataclass
class Ticket:
    value: str
    expires_at: float


@dataclass
class MemberCode:
    code: str
    agentid: str
    userid: str
    openid: str
    issued_at: float
    used: bool = False


@dataclass
class ChatMessage:
    sender: str  # a member's userid: the sidebar puts messages in for the member to send
    msgtype: str
    content: dict
    sent_at: float
    via: str = "sendChatMessage"


@dataclass
class ClientState:
    corp_tickets: list[Ticket] = field(default_factory=list)
    agent_tickets: list[Ticket] = field(default_factory=list)
    corp_ticket_fetches: SlidingWindow = field(default_factory=lambda: SlidingWindow(3600))
    app_ticket_fetches: SlidingWindow = field(default_factory=lambda: SlidingWindow(3600))
    member_codes: dict[str, MemberCode] = field(default_factory=dict)
    toolbar_url: str = ""
    chats: dict[str, list[ChatMessage]] = field(default_factory=dict)


def client_state(tenant: Tenant) -> ClientState:
    return tenant.data.setdefault("wecom_client", ClientState())


def inspect(tenant: Tenant) -> dict:
    """What the client holds, merged into the corp's /sandbox/state."""
    state = client_state(tenant)
    return {
        "toolbar_url": state.toolbar_url,
        "chats": {key: [asdict(m) for m in messages] for key, messages in state.chats.items()},
        "member_codes": {k: asdict(c) for k, c in state.member_codes.items()},
    }


def chat_key(userid: str, external_userid: str = "", chat_id: str = "") -> str:
    """A one-to-one chat is the member and the customer; a customer group is its chat id."""
    return f"group:{chat_id}" if chat_id else f"single:{userid}:{external_userid}"


def signature(ticket: str, nonce_str: str, timestamp: str, url: str) -> str:
    plain = f"jsapi_ticket={ticket}&noncestr={nonce_str}&timestamp={timestamp}&url={url}"
    return hashlib.sha1(plain.encode()).hexdigest()


def openid_of(corp_id: str, who: str) -> str:
    """A stable openid for someone who is not a member of the corp."""
    return "o" + hashlib.sha1(f"{corp_id}:{who}".encode()).hexdigest()[:27]


# --- API: tickets and the member OAuth code exchange --------------------------------


def _app_api() -> tuple[Tenant, ClientState]:
    tenant, secret_name, _ = authenticated()
    if secret_name != AGENT_SECRET:
        raise ApiError(48002, "api forbidden")
    return tenant, client_state(tenant)


def _ticket(tickets: list[Ticket], corp_window: SlidingWindow, app_window: SlidingWindow):
    limits = sandbox()
    with limits.lock:
        now = limits.now()
        if corp_window.count(now) >= limits.jsapi_tickets_per_hour_per_corp:
            raise ApiError(45009, "api freq out of limit")
        if app_window.count(now) >= limits.jsapi_tickets_per_hour_per_app:
            raise ApiError(45009, "api freq out of limit")
        corp_window.add(now)
        app_window.add(now)
        live = [t for t in tickets if t.expires_at > now]
        if live:
            ticket = live[-1]
        else:
            ticket = Ticket(secrets.token_urlsafe(48), now + TICKET_SECONDS)
            tickets.append(ticket)
            del tickets[:-5]
        return ok(ticket=ticket.value, expires_in=int(ticket.expires_at - now))


@api_bp.get("/cgi-bin/get_jsapi_ticket")
def get_jsapi_ticket():
    """The corp's JS-SDK ticket (signs wx.config)."""
    _, state = _app_api()
    # One app in the sandbox: the corp's count and the app's are both kept on the corp.
    return _ticket(state.corp_tickets, state.corp_ticket_fetches, state.app_ticket_fetches)


@api_bp.get("/cgi-bin/ticket/get")
def get_agent_ticket():
    """The app's JS-SDK ticket (signs wx.agentConfig)."""
    if request.args.get("type") != "agent_config":
        raise ApiError(40097, "invalid type")
    _, state = _app_api()
    return _ticket(state.agent_tickets, state.corp_ticket_fetches, state.app_ticket_fetches)


@api_bp.get("/cgi-bin/auth/getuserinfo")
def getuserinfo():
    """A member OAuth code -> userid (a member) or openid (anyone else)."""
    tenant, state = _app_api()
    with sandbox().lock:
        now = sandbox().now()
        grant = state.member_codes.get(request.args.get("code", ""))
        if grant is None or grant.used or grant.issued_at <= now - MEMBER_CODE_SECONDS:
            raise ApiError(40029, "invalid code")
        if grant.agentid != tenant.agent_id:
            raise ApiError(40029, "invalid code")
        grant.used = True
    if grant.userid:
        return ok(userid=grant.userid, user_ticket=secrets.token_urlsafe(24), expires_in=1800)
    return ok(openid=grant.openid)


# --- member OAuth ------------------------------------------------------------------


def member_authorize(tenant: Tenant):
    """connect/oauth2/authorize for a corp: 302 to redirect_uri?code=CODE&state=S."""
    args = request.args
    state = client_state(tenant)
    redirect_uri = args.get("redirect_uri", "")
    if not redirect_uri:
        raise ApiError(10011, "redirect_uri is empty")
    if args.get("scope") != "snsapi_base":
        raise ApiError(10005, "scope unauthorized")
    if args.get("agentid") != tenant.agent_id:
        raise ApiError(40056, "invalid agentid")
    trusted = urlsplit(state.toolbar_url).netloc
    if trusted and urlsplit(redirect_uri).netloc != trusted:
        raise ApiError(50001, "redirect_url not in the app's trusted domain")
    who = args.get("userid") or _member_from_cookie(tenant.app_id)
    if not who:
        return render_template("wecom_who.html", corp_id=tenant.app_id, args=args.to_dict())
    with sandbox().lock:
        now = sandbox().now()
        codes = state.member_codes
        for stale in [c for c in codes.values() if c.issued_at <= now - MEMBER_CODE_SECONDS]:
            del codes[stale.code]
        member = who in state_of(tenant).staff
        grant = MemberCode(
            secrets.token_urlsafe(24),
            tenant.agent_id,
            userid=who if member else "",
            openid="" if member else openid_of(tenant.app_id, who),
            issued_at=now,
        )
        codes[grant.code] = grant
    return redirect(_with_query(redirect_uri, code=grant.code, state=args.get("state", "")))


def _member_from_cookie(corp_id: str) -> str:
    corp, _, userid = request.cookies.get(MEMBER_COOKIE, "").partition(":")
    return userid if corp == corp_id else ""


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


# --- the client page -------------------------------------------------------------


def _corp(corp_id: str) -> Tenant:
    tenant = sandbox().tenant(corp_id)
    if tenant.kind != WECOM:
        raise ApiError(40013, "invalid corpid")
    return tenant


@client_bp.post("/toolbar")
def set_toolbar():
    """The chat-toolbar page an administrator configured for the corp's app."""
    data = request.get_json(force=True, silent=True) or {}
    url = str(data.get("url", ""))
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        return jsonify(error="url must be an absolute http(s) URL"), 400
    tenant = _corp(str(data.get("corp_id", "")))
    with sandbox().lock:
        client_state(tenant).toolbar_url = url
    return jsonify(corp_id=tenant.app_id, url=url)


@client_bp.post("/limits")
def set_limits():
    """{"corp_per_hour": 400, "app_per_hour": 100}: JS-SDK ticket fetches allowed."""
    data = request.get_json(force=True, silent=True) or {}
    state = sandbox()
    with state.lock:
        if "corp_per_hour" in data:
            state.jsapi_tickets_per_hour_per_corp = int(data["corp_per_hour"])
        if "app_per_hour" in data:
            state.jsapi_tickets_per_hour_per_app = int(data["app_per_hour"])
        return jsonify(
            corp_per_hour=state.jsapi_tickets_per_hour_per_corp,
            app_per_hour=state.jsapi_tickets_per_hour_per_app,
        )


@client_bp.get("/client")
def client_page():
    args = request.args
    tenant = _corp(args.get("corp_id", ""))
    wecom = state_of(tenant)
    userid, external_userid, chat_id = (
        args.get("userid", ""),
        args.get("external_userid", ""),
        args.get("chat_id", ""),
    )
    if userid not in wecom.staff:
        return Response(f"{userid!r} is not a member of {tenant.app_id}", 404)
    if not (external_userid or chat_id):
        return Response("open a chat: external_userid= or chat_id=", 400)
    customer = wecom.external_contacts.get(external_userid)
    toolbar = client_state(tenant).toolbar_url
    response = Response(
        render_template(
            "wecom_client.html",
            corp_id=tenant.app_id,
            agent_id=tenant.agent_id,
            member=wecom.staff[userid],
            external_userid=external_userid,
            chat_id=chat_id,
            chat_name=(customer.name if customer else external_userid) or chat_id,
            entry=GROUP_CHAT if chat_id else SINGLE_CHAT,
            toolbar_url=toolbar,
            toolbar_origin="{0.scheme}://{0.netloc}".format(urlsplit(toolbar)) if toolbar else "",
            chat_url=url_for(
                ".chat", corp_id=tenant.app_id, key=chat_key(userid, external_userid, chat_id)
            ),
        )
    )
    # The member signed in to this client: WeCom's OAuth knows them from now on.
    response.set_cookie(MEMBER_COOKIE, f"{tenant.app_id}:{userid}", path="/", samesite="Lax")
    return response


@client_bp.get("/client/chat")
def chat():
    tenant = _corp(request.args.get("corp_id", ""))
    with sandbox().lock:
        messages = client_state(tenant).chats.get(request.args.get("key", ""), [])
        return jsonify([asdict(m) for m in messages])


@client_bp.post("/client/verify")
def verify():
    """Whether a config (kind "corp") or agentConfig (kind "agent") signature was made with
    a live ticket of this corp (and app) for `url`."""
    data = request.get_json(force=True, silent=True) or {}
    tenant = _corp(str(data.get("corp_id", "")))
    kind = data.get("kind")
    if kind == "agent" and str(data.get("agentid", "")) != tenant.agent_id:
        return jsonify(ok=False, reason="invalid agentid")
    state = client_state(tenant)
    with sandbox().lock:
        now = sandbox().now()
        tickets = state.agent_tickets if kind == "agent" else state.corp_tickets
        live = [t.value for t in tickets if t.expires_at > now]
    fields = [str(data.get(k, "")) for k in ("nonceStr", "timestamp", "url")]
    given = str(data.get("signature", ""))
    if any(hmac.compare_digest(signature(t, *fields), given) for t in live):
        return jsonify(ok=True)
    return jsonify(ok=False, reason="invalid signature")


@client_bp.post("/client/send")
def send():
    """sendChatMessage: the message goes into the open chat."""
    data = request.get_json(force=True, silent=True) or {}
    tenant = _corp(str(data.get("corp_id", "")))
    userid = str(data.get("userid", ""))
    if userid not in state_of(tenant).staff:
        return jsonify(ok=False, reason="unknown member"), 400
    msgtype = data.get("msgtype")
    content = data.get(msgtype) if msgtype in CHAT_MESSAGE_TYPES else None
    if not isinstance(content, dict):
        return jsonify(ok=False, reason="invalid msgtype"), 400
    if msgtype == "news" and not (content.get("link") and content.get("title")):
        return jsonify(ok=False, reason="news needs a link and a title"), 400
    if msgtype == "text" and not content.get("content"):
        return jsonify(ok=False, reason="text needs content"), 400
    key = chat_key(userid, str(data.get("external_userid", "")), str(data.get("chat_id", "")))
    with sandbox().lock:
        messages = client_state(tenant).chats.setdefault(key, [])
        messages.append(ChatMessage(userid, msgtype, content, sandbox().now()))
        del messages[:-CHAT_MESSAGES_KEPT]
    return jsonify(ok=True)


@client_bp.get("/bridge.js")
def bridge():
    """The client bridge a toolbar page includes (the real client injects its own)."""
    response = client_bp.send_static_file("bridge.js")
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
