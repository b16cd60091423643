"""The WeCom API (qyapi.weixin.qq.com), served under /wecom.

Staff, customers ("客户联系"), 联系我 codes, welcome messages, corp tags, group sends
by staff and app messages to staff, with the limits and errcodes of WECHAT.md. API
changes trigger no callbacks, as on the real platform; what people do in the WeCom
client is played by the in-process actions at the end of this module (add_staff,
add_external_contact, ...), which deliver the callback WeCom would send. A customer
scanning a 联系我 code (scan_contact_way) is handed to one of the code's current `user`
list, at random as WeCom does; without skip_verify their friend request waits for the
member (accept_contact_request) and WeCom says nothing until it is accepted
(add_half_external_contact is WeCom's event for a skip_verify add the member has not
yet confirmed; in practice such adds arrive as add_external_contact, which is what the
scan delivers).

Errcodes where WECHAT.md is silent, from WeCom's global errcode list (as mirrored in
zsmhub/workweixin's errcodes and binarywang/WxJava's WxCpErrorMsgEnum) and its API pages:

- 84061 no customer relation (also `externalcontact/list` for a member without customers,
  as reported in binarywang/WxJava#1528); 84074 member without customer-contact permission;
  40003 unknown userid; 60111 unknown userid in `user/get`.
- 41050 welcome code unknown or older than 20 s; 41051 "externaluser has started chatting"
  for a used code or a pair that already chatted; 41049 code missing.
- 联系我: 41037/41038 type/scene missing, 41039/41040 invalid, 41041 over 100 members,
  41043/41044 config_id missing/unknown; state or remark over 30 characters: 40058.
- Corp tags: 40068 unknown tag or group, 40071 duplicate name, 40072 name length,
  40126 over 3000 tags.
- Group sends: 41048 no customer (or customer group) can receive it, 41047 unknown msgid.
- Over the shared 500,000 联系我 + 加入群聊 configurations: 41054 (uncertain).
- message/send: 301002 token not from the agent's secret, 40056 agentid not the tenant's,
  41011 agentid missing, 40008 msgtype, 81013 no valid recipient. Over 30 messages a
  minute (1000 an hour) to one member the API still answers 0 and the extra messages are
  dropped ("超过部分会被丢弃不下发"): they are recorded with delivered=False.
- 48002 for a customer-contact API called with another secret's token; 45009 "api freq
  out of limit" beyond 10,000 calls a minute or 150,000 an hour per corp.
- 40032 batch/get_by_user with more than 100 userids; 50100 invalid cursor.
- Attachments (group sends, welcomes): 40007 for media unknown, of another type or past
  its 3 days (media.py).
"""

import io
import random
import secrets
import string
import time
from collections import deque
from dataclasses import asdict, dataclass, field

import segno
from flask import Blueprint, Response, jsonify, request

from wechat import simulate
from wechat.sandbox import media
from wechat.sandbox.core import WECOM, ApiError, Sandbox, Tenant, body, control, ok, sandbox

bp = Blueprint("sandbox_wecom", __name__, url_prefix="/wecom")

CONTACT_SECRET = "contact"  # the customer-contact ("客户联系") secret
AGENT_SECRET = "agent"  # the self-built app that messages staff

CALLS_PER_MINUTE = 10_000
CALLS_PER_HOUR = 150_000

FOLLOW_USERS_PER_PAGE = 500
BATCH_USERIDS_MAX = 100
BATCH_LIMIT_DEFAULT = 50
BATCH_LIMIT_MAX = 100

CONTACT_WAY_STATE_MAX_CHARS = 30
CONTACT_WAY_REMARK_MAX_CHARS = 30
CONTACT_WAY_USERS_MAX = 100
# 联系我 (add_contact_way) and 加入群聊 (add_join_way) configurations share this per corp.
CONFIG_QUOTA = 500_000

WELCOME_CODE_SECONDS = 20
ATTACHMENTS_MAX = 9

TAG_NAME_MAX_CHARS = 30
CORP_TAGS_MAX = 3000

MSG_TEMPLATES_PER_CUSTOMER_PER_MONTH = 4  # uncertain: make it configurable
MSG_TEMPLATE_CUSTOMERS_MAX = 10_000
MSG_TEMPLATE_CHATS_MAX = 2000

APP_MESSAGES_PER_MEMBER_PER_MINUTE = 30
APP_MESSAGES_PER_MEMBER_PER_HOUR = 1000
APP_MESSAGE_USERS_MAX = 1000
APP_MESSAGE_TYPES = ("text", "textcard", "markdown")

CHINA_UTC_OFFSET_SECONDS = 8 * 3600  # calendar months are Beijing time

WECHAT_USER = 1  # external contact types
WECOM_USER = 2
ADD_WAY_QR_CODE = 1

# Send statuses of a group message, per customer (get_groupmsg_send_result).
NOT_SENT, SENT, NOT_A_FRIEND, MONTHLY_LIMIT = 0, 1, 2, 3
PENDING_CONFIRMATION, CONFIRMED = "pending_confirmation", "sent"


# --- state ----------------------------------------------------------------


@dataclass
class Staff:
    userid: str
    name: str
    customer_contact: bool = True  # has the customer-contact permission
    # user/get shows it only when set: WeCom gives it only to apps allowed to read it.
    email: str = ""


@dataclass
class ExternalContact:
    external_userid: str
    name: str
    type: int = WECHAT_USER
    corp_name: str = ""  # WeCom users only
    position: str = ""  # WeCom users only: their job title in their own corp
    unionid: str = ""  # only when bound to the corp's Open Platform account
    gender: int = 0
    avatar: str = ""


@dataclass
class FollowUser:
    """A staff member's relation to a customer."""

    userid: str
    external_userid: str
    createtime: int
    remark: str = ""
    description: str = ""
    tag_ids: list[str] = field(default_factory=list)
    remark_corp_name: str = ""
    remark_mobiles: list[str] = field(default_factory=list)
    oper_userid: str = ""
    add_way: int = 0
    state: str = ""
    deleted_by_customer: bool = False  # the customer deleted the staff member


@dataclass
class ContactWay:
    """A 联系我 configuration."""

    config_id: str
    type: int
    scene: int
    user: list[str]
    party: list[int] = field(default_factory=list)
    state: str = ""
    remark: str = ""
    style: int = 0
    skip_verify: bool = True
    qr_code: str = ""


@dataclass
class CorpTag:
    id: str
    name: str
    create_time: int
    order: int = 0


@dataclass
class TagGroup:
    group_id: str
    group_name: str
    create_time: int
    order: int = 0
    tags: list[CorpTag] = field(default_factory=list)


@dataclass
class WelcomeCode:
    code: str
    userid: str
    external_userid: str
    issued_at: float
    used: bool = False


@dataclass
class WelcomeMessage:
    welcome_code: str
    userid: str
    external_userid: str
    text: dict | None
    attachments: list
    sent_at: float
    seconds_after_add: float  # latency from the add event


@dataclass
class MsgTemplate:
    """A group send by a staff member (add_msg_template), waiting for their confirmation."""

    msgid: str
    sender: str
    external_userids: list[str]
    fail_list: list[str]
    text: dict | None
    attachments: list
    create_time: int
    status: str = PENDING_CONFIRMATION
    send_time: int = 0
    # external_userid (chat_id for chat_type "group") -> send status
    results: dict[str, int] = field(default_factory=dict)
    chat_type: str = "single"
    chat_ids: list[str] = field(default_factory=list)  # chat_type "group": the groups


@dataclass
class AppMessage:
    msgid: str
    userid: str
    msgtype: str
    content: dict
    sent_at: float
    delivered: bool  # False: over the per-member limit, dropped as WeCom does


@dataclass
class SlidingWindow:
    """Times of recent events, forgetting those older than `seconds`."""

    seconds: float
    times: deque[float] = field(default_factory=deque)

    def count(self, now: float) -> int:
        while self.times and self.times[0] <= now - self.seconds:
            self.times.popleft()
        return len(self.times)

    def add(self, now: float) -> None:
        self.times.append(now)


@dataclass
class RateLimit:
    """At most `per_minute` and `per_hour` events, in sliding windows."""

    per_minute: int
    per_hour: int
    minute: SlidingWindow = field(default_factory=lambda: SlidingWindow(60))
    hour: SlidingWindow = field(default_factory=lambda: SlidingWindow(3600))

    def allows(self, now: float) -> bool:
        return self.minute.count(now) < self.per_minute and self.hour.count(now) < self.per_hour

    def add(self, now: float) -> None:
        self.minute.add(now)
        self.hour.add(now)


def _corp_call_limit() -> RateLimit:
    return RateLimit(CALLS_PER_MINUTE, CALLS_PER_HOUR)


@dataclass
class WeComState:
    staff: dict[str, Staff] = field(default_factory=dict)
    external_contacts: dict[str, ExternalContact] = field(default_factory=dict)
    follows: dict[tuple[str, str], FollowUser] = field(default_factory=dict)  # (userid, ext)
    chatted: set[tuple[str, str]] = field(default_factory=set)  # (userid, external_userid)
    contact_ways: dict[str, ContactWay] = field(default_factory=dict)
    # Friend requests through a code that asks for verification, waiting for the member.
    contact_requests: dict[tuple[str, str], dict] = field(default_factory=dict)
    tag_groups: dict[str, TagGroup] = field(default_factory=dict)
    welcome_codes: dict[str, WelcomeCode] = field(default_factory=dict)
    welcome_messages: list[WelcomeMessage] = field(default_factory=list)
    msg_templates: dict[str, MsgTemplate] = field(default_factory=dict)
    group_messages_received: dict[str, list[float]] = field(default_factory=dict)
    app_messages: list[AppMessage] = field(default_factory=list)
    app_message_limits: dict[str, RateLimit] = field(default_factory=dict)  # per member
    calls: RateLimit = field(default_factory=_corp_call_limit)


def state_of(tenant: Tenant) -> WeComState:
    return tenant.data.setdefault(WECOM, WeComState())


def authenticated() -> tuple[Tenant, str, WeComState]:
    """The corp, the name of the secret the token was issued for, and the corp's state.
    Counts the call against the corp's API limits (45009 beyond them)."""
    tenant, secret_name = sandbox().authenticate(WECOM, request.args.get("access_token"))
    state = state_of(tenant)
    with sandbox().lock:
        now = sandbox().now()
        if not state.calls.allows(now):
            raise ApiError(45009, "api freq out of limit")
        state.calls.add(now)
    return tenant, secret_name, state


def contact_api() -> tuple[Tenant, WeComState]:
    """A customer-contact API call: only tokens of the customer-contact secret may make it."""
    tenant, secret_name, state = authenticated()
    if secret_name != CONTACT_SECRET:
        raise ApiError(48002, "api forbidden")
    return tenant, state


def inspect(tenant: Tenant) -> dict:
    state = state_of(tenant)
    return {
        "kind": WECOM,
        "staff": {userid: asdict(s) for userid, s in state.staff.items()},
        "external_contacts": {k: asdict(c) for k, c in state.external_contacts.items()},
        "follow_users": [asdict(f) for f in state.follows.values()],
        "contact_ways": {k: asdict(w) for k, w in state.contact_ways.items()},
        "corp_tags": [asdict(g) for g in state.tag_groups.values()],
        "welcome_codes": {k: asdict(c) for k, c in state.welcome_codes.items()},
        "welcome_messages": [asdict(m) for m in state.welcome_messages],
        "msg_templates": {k: asdict(t) for k, t in state.msg_templates.items()},
        "app_messages": [asdict(m) for m in state.app_messages],
    }


# --- helpers ----------------------------------------------------------------


def _new_id(prefix: str, length: int = 22) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def _contact_staff(state: WeComState, userid: str) -> Staff:
    """A staff member who may have customers: 40003 if unknown, 84074 without permission."""
    staff = state.staff.get(userid or "")
    if staff is None:
        raise ApiError(40003, f"invalid userid: {userid}")
    if not staff.customer_contact:
        raise ApiError(84074, f"{userid} has no customer-contact permission")
    return staff


def _follows_of_staff(state: WeComState, userid: str) -> list[FollowUser]:
    return [f for f in state.follows.values() if f.userid == userid]


def _follows_of_customer(state: WeComState, external_userid: str) -> list[FollowUser]:
    return [
        f
        for f in state.follows.values()
        if f.external_userid == external_userid and state.staff[f.userid].customer_contact
    ]


def _follow(state: WeComState, userid: str, external_userid: str) -> FollowUser:
    follow = state.follows.get((userid, external_userid))
    if follow is None:
        raise ApiError(84061, "not external contact")
    return follow


def _page(items: list, cursor: str, limit: int) -> tuple[list, str]:
    """A page of `items` from an opaque cursor, and the cursor of the next page ("" at the end)."""
    if cursor and not cursor.isdigit():
        raise ApiError(50100, "invalid cursor")
    start = int(cursor or 0)
    end = start + limit
    return items[start:end], (str(end) if end < len(items) else "")


def _check_attachments(tenant: Tenant, data: dict) -> list:
    """At most 9, each naming live media of the corp (media.check_wecom_attachments)."""
    attachments = data.get("attachments") or []
    if not isinstance(attachments, list):
        raise ApiError(47001, "data format error")
    if len(attachments) > ATTACHMENTS_MAX:
        raise ApiError(40058, f"at most {ATTACHMENTS_MAX} attachments")
    with sandbox().lock:
        media.check_wecom_attachments(tenant, attachments)
    return attachments


def _calendar_month(ts: float) -> tuple[int, int]:
    local = time.gmtime(ts + CHINA_UTC_OFFSET_SECONDS)
    return local.tm_year, local.tm_mon


def _contact_json(contact: ExternalContact) -> dict:
    data = {
        "external_userid": contact.external_userid,
        "name": contact.name,
        "type": contact.type,
        "gender": contact.gender,
        "avatar": contact.avatar,
    }
    if contact.type == WECOM_USER:
        data["corp_name"] = contact.corp_name
        data["position"] = contact.position
    if contact.unionid:
        data["unionid"] = contact.unionid
    return data


def _follow_json(follow: FollowUser) -> dict:
    data = {
        "userid": follow.userid,
        "remark": follow.remark,
        "description": follow.description,
        "createtime": follow.createtime,
        "remark_corp_name": follow.remark_corp_name,
        "remark_mobiles": follow.remark_mobiles,
        "oper_userid": follow.oper_userid,
        "add_way": follow.add_way,
    }
    if follow.state:
        data["state"] = follow.state
    return data


def _tags_json(state: WeComState, tag_ids: list[str]) -> list[dict]:
    """Tags as externalcontact/get shows them: only corp tags (type 1) that still exist."""
    where = {tag.id: (group, tag) for group in state.tag_groups.values() for tag in group.tags}
    return [
        {"group_name": where[t][0].group_name, "tag_name": where[t][1].name, "tag_id": t, "type": 1}
        for t in tag_ids
        if t in where
    ]


# --- staff and customers ----------------------------------------------------


@bp.get("/cgi-bin/gettoken")
def gettoken():
    """Fakes GET /cgi-bin/gettoken?corpid&corpsecret: one token per secret, reused while valid."""
    tenant = sandbox().tenant(request.args.get("corpid", ""))
    given = request.args.get("corpsecret", "")
    secret_name = next((name for name, value in tenant.secrets.items() if value == given), None)
    if secret_name is None:
        raise ApiError(40001, "invalid secret")
    issued = sandbox().issue_token(tenant, secret_name, reuse=True)
    remaining = int(issued.expires_at - sandbox().now())
    return ok(access_token=issued.value, expires_in=remaining)


@bp.get("/cgi-bin/externalcontact/get_follow_user_list")
def get_follow_user_list():
    """Fakes externalcontact/get_follow_user_list: staff with the customer-contact permission."""
    _, state = contact_api()
    with sandbox().lock:
        return ok(follow_user=[s.userid for s in state.staff.values() if s.customer_contact])


@bp.get("/cgi-bin/user/get")
def user_get():
    """Fakes GET /cgi-bin/user/get?userid (any secret's token; the sandbox has no scopes)."""
    _, _, state = authenticated()
    with sandbox().lock:
        staff = state.staff.get(request.args.get("userid", ""))
        if staff is None:
            raise ApiError(60111, "userid not found")
        email = {"email": staff.email} if staff.email else {}
        return ok(userid=staff.userid, name=staff.name, department=[1], status=1, **email)


@bp.get("/cgi-bin/externalcontact/list")
def list_customers():
    """Fakes externalcontact/list?userid: the external_userids of one staff member.
    A member without customers gets 84061, as the real API answers."""
    _, state = contact_api()
    with sandbox().lock:
        staff = _contact_staff(state, request.args.get("userid", ""))
        external_userids = [f.external_userid for f in _follows_of_staff(state, staff.userid)]
        if not external_userids:
            raise ApiError(84061, "not external contact")
        return ok(external_userid=external_userids)


@bp.get("/cgi-bin/externalcontact/get")
def get_customer():
    """Fakes externalcontact/get?external_userid&cursor: the contact and its follow users,
    500 a page."""
    _, state = contact_api()
    with sandbox().lock:
        contact = state.external_contacts.get(request.args.get("external_userid", ""))
        follows = _follows_of_customer(state, contact.external_userid) if contact else []
        if not follows:
            raise ApiError(84061, "not external contact")
        page, next_cursor = _page(follows, request.args.get("cursor", ""), FOLLOW_USERS_PER_PAGE)
        follow_user = [{**_follow_json(f), "tags": _tags_json(state, f.tag_ids)} for f in page]
        return ok(
            external_contact=_contact_json(contact),
            follow_user=follow_user,
            next_cursor=next_cursor,
        )


@bp.post("/cgi-bin/externalcontact/batch/get_by_user")
def batch_get_by_user():
    """Fakes externalcontact/batch/get_by_user: {"userid_list" (<= 100), "cursor", "limit"}
    -> one entry per (customer, follow user). The legacy single "userid" (what wechatpy
    sends) is accepted too; a limit over 100 counts as 100, as documented."""
    _, state = contact_api()
    data = body()
    userids = data.get("userid_list") or ([data["userid"]] if data.get("userid") else [])
    if not userids:
        raise ApiError(41009, "missing userid")
    if len(userids) > BATCH_USERIDS_MAX:
        raise ApiError(40032, f"at most {BATCH_USERIDS_MAX} userids")
    limit = min(int(data.get("limit") or BATCH_LIMIT_DEFAULT), BATCH_LIMIT_MAX)
    if limit < 1:
        raise ApiError(40058, "invalid limit")
    with sandbox().lock:
        for userid in userids:
            _contact_staff(state, userid)
        follows = [f for userid in userids for f in _follows_of_staff(state, userid)]
        page, next_cursor = _page(follows, data.get("cursor") or "", limit)
        entries = [
            {
                "external_contact": _contact_json(state.external_contacts[f.external_userid]),
                "follow_info": {**_follow_json(f), "tag_id": list(f.tag_ids)},
            }
            for f in page
        ]
        return ok(external_contact_list=entries, next_cursor=next_cursor)


@bp.post("/cgi-bin/externalcontact/remark")
def remark():
    """Fakes externalcontact/remark: a staff member's remark, description, company and
    mobiles for a customer. No callback."""
    _, state = contact_api()
    data = body()
    with sandbox().lock:
        follow = _follow(state, data.get("userid", ""), data.get("external_userid", ""))
        if "remark" in data:
            follow.remark = data["remark"]
        if "description" in data:
            follow.description = data["description"]
        if "remark_company" in data:
            follow.remark_corp_name = data["remark_company"]
        if "remark_mobiles" in data:
            follow.remark_mobiles = list(data["remark_mobiles"])
        return ok()


# --- 联系我 -------------------------------------------------------------------


def _contact_way_users(state: WeComState, way_type: int, data: dict) -> list[str]:
    users = list(data.get("user") or [])
    if way_type == 1 and len(users) != 1:
        raise ApiError(40058, "a single-person 联系我 takes exactly one user")
    if way_type == 2 and not users and not data.get("party"):
        raise ApiError(40058, "user or party required")
    if len(users) > CONTACT_WAY_USERS_MAX:
        raise ApiError(41041, f"at most {CONTACT_WAY_USERS_MAX} users")
    for userid in users:
        _contact_staff(state, userid)
    return users


def _check_contact_way_texts(data: dict) -> None:
    if len(data.get("state") or "") > CONTACT_WAY_STATE_MAX_CHARS:
        raise ApiError(40058, f"state longer than {CONTACT_WAY_STATE_MAX_CHARS} characters")
    if len(data.get("remark") or "") > CONTACT_WAY_REMARK_MAX_CHARS:
        raise ApiError(40058, f"remark longer than {CONTACT_WAY_REMARK_MAX_CHARS} characters")


def configs_in_use(tenant: Tenant) -> int:
    """The corp's 联系我 and 加入群聊 configurations, against CONFIG_QUOTA."""
    return len(state_of(tenant).contact_ways) + len(tenant.data.get(f"{WECOM}_join_ways", {}))


def _contact_way(state: WeComState, data: dict) -> ContactWay:
    config_id = data.get("config_id")
    if not config_id:
        raise ApiError(41043, "missing config_id")
    way = state.contact_ways.get(config_id)
    if way is None:
        raise ApiError(41044, "invalid config_id")
    return way


@bp.post("/cgi-bin/externalcontact/add_contact_way")
def add_contact_way():
    """Fakes externalcontact/add_contact_way: type 1 single / 2 multi, scene 1 mini program /
    2 QR code (which returns qr_code), state <= 30 characters for channel attribution."""
    tenant, state = contact_api()
    data = body()
    way_type, scene = data.get("type"), data.get("scene")
    if way_type is None:
        raise ApiError(41037, "missing type")
    if scene is None:
        raise ApiError(41038, "missing scene")
    if way_type not in (1, 2):
        raise ApiError(41039, "invalid type")
    if scene not in (1, 2):
        raise ApiError(41040, "invalid scene")
    _check_contact_way_texts(data)
    with sandbox().lock:
        if configs_in_use(tenant) >= CONFIG_QUOTA:
            raise ApiError(41054, f"at most {CONFIG_QUOTA} configurations")
        config_id = secrets.token_hex(16)
        way = ContactWay(
            config_id=config_id,
            type=way_type,
            scene=scene,
            user=_contact_way_users(state, way_type, data),
            party=list(data.get("party") or []),
            state=data.get("state") or "",
            remark=data.get("remark") or "",
            style=data.get("style") or 0,
            skip_verify=data.get("skip_verify", True),
            # WeCom links a picture on its image host; the sandbox draws one itself.
            qr_code=(
                f"{request.host_url}sandbox/wecom/{tenant.app_id}/contact-ways/{config_id}/qr.png"
                if scene == 2
                else ""
            ),
        )
        state.contact_ways[config_id] = way
        return ok(config_id=config_id, **({"qr_code": way.qr_code} if way.qr_code else {}))


@control.get("/wecom/<corp_id>/contact-ways/<config_id>/qr.png")
def http_contact_way_qr_code(corp_id: str, config_id: str):
    """The 联系我 code's picture, a PNG as WeCom's image host serves; its content is the
    scan endpoint below."""
    with sandbox().lock:
        if config_id not in state_of(sandbox().tenant(corp_id)).contact_ways:
            raise ApiError(41044, "invalid config_id")
    image = io.BytesIO()
    scan = f"{request.host_url}sandbox/wecom/{corp_id}/contact-ways/{config_id}/scan"
    segno.make(scan, error="m").save(image, kind="png", scale=6, border=2)
    return Response(image.getvalue(), mimetype="image/png")


@control.post("/wecom/<corp_id>/contact-ways/<config_id>/scan")
def http_scan_contact_way(corp_id: str, config_id: str):
    """A customer scans the code's picture: {external_userid, name} -> the member added."""
    data = body()
    external_userid, name = str(data.get("external_userid") or ""), str(data.get("name") or "")
    if not external_userid:
        raise ApiError(40058, "external_userid required")
    tenant = sandbox().tenant(corp_id)
    with sandbox().lock:
        way = state_of(tenant).contact_ways.get(config_id)
        if way is None:
            raise ApiError(41044, "invalid config_id")
    try:
        userid = scan_contact_way(
            sandbox(), tenant, state=way.state, external_userid=external_userid, name=name
        )
    except ValueError as exc:
        raise ApiError(40058, str(exc)) from None
    return jsonify(userid=userid)


@bp.post("/cgi-bin/externalcontact/get_contact_way")
def get_contact_way():
    """Fakes externalcontact/get_contact_way: {"config_id"} -> contact_way."""
    _, state = contact_api()
    data = body()
    with sandbox().lock:
        way = asdict(_contact_way(state, data))
        if not way["qr_code"]:
            del way["qr_code"]
        return ok(contact_way=way)


@bp.post("/cgi-bin/externalcontact/update_contact_way")
def update_contact_way():
    """Fakes externalcontact/update_contact_way: remark, skip_verify, style, state, user, party."""
    _, state = contact_api()
    data = body()
    _check_contact_way_texts(data)
    with sandbox().lock:
        way = _contact_way(state, data)
        if "user" in data or "party" in data:
            merged = {"user": way.user, "party": way.party, **data}
            way.user = _contact_way_users(state, way.type, merged)
            way.party = list(merged.get("party") or [])
        for name in ("remark", "skip_verify", "style", "state"):
            if name in data:
                setattr(way, name, data[name])
        return ok()


@bp.post("/cgi-bin/externalcontact/del_contact_way")
def del_contact_way():
    """Fakes externalcontact/del_contact_way: {"config_id"}."""
    _, state = contact_api()
    data = body()
    with sandbox().lock:
        del state.contact_ways[_contact_way(state, data).config_id]
        return ok()


# --- welcome messages --------------------------------------------------------


@bp.post("/cgi-bin/externalcontact/send_welcome_msg")
def send_welcome_msg():
    """Fakes externalcontact/send_welcome_msg: {"welcome_code", "text", "attachments"}.
    Once per code, within 20 s of the add event, and not after the pair has chatted."""
    tenant, state = contact_api()
    data = body()
    if not data.get("welcome_code"):
        raise ApiError(41049, "missing welcome_code")
    attachments = _check_attachments(tenant, data)
    with sandbox().lock:
        now = sandbox().now()
        code = state.welcome_codes.get(data["welcome_code"])
        if code is None:
            raise ApiError(41050, "invalid welcome_code")
        pair = (code.userid, code.external_userid)
        if code.used or pair in state.chatted:
            raise ApiError(41051, "externaluser has started chatting")
        if now - code.issued_at > WELCOME_CODE_SECONDS:
            raise ApiError(41050, "invalid welcome_code: expired")
        code.used = True
        state.chatted.add(pair)
        message = WelcomeMessage(
            welcome_code=code.code,
            userid=code.userid,
            external_userid=code.external_userid,
            text=data.get("text"),
            attachments=attachments,
            sent_at=now,
            seconds_after_add=now - code.issued_at,
        )
        state.welcome_messages.append(message)
        return ok()


# --- corp tags ----------------------------------------------------------------


def _check_tag_name(name: str) -> str:
    if not name or len(name) > TAG_NAME_MAX_CHARS:
        raise ApiError(40072, f"tag names take 1 to {TAG_NAME_MAX_CHARS} characters")
    return name


def _corp_tag_count(state: WeComState) -> int:
    return sum(len(group.tags) for group in state.tag_groups.values())


def _group_json(group: TagGroup, tags: list[CorpTag]) -> dict:
    return {
        "group_id": group.group_id,
        "group_name": group.group_name,
        "create_time": group.create_time,
        "order": group.order,
        "deleted": False,
        "tag": [{**asdict(tag), "deleted": False} for tag in tags],
    }


def _group_for_new_tags(state: WeComState, data: dict, now: int) -> TagGroup:
    """The group named by group_id (40068 if unknown) or group_name (created if new)."""
    if data.get("group_id"):
        group = state.tag_groups.get(data["group_id"])
        if group is None:
            raise ApiError(40068, "invalid tag group id")
        return group
    if not data.get("group_name"):
        raise ApiError(40058, "group_id or group_name required")
    name = _check_tag_name(data["group_name"])
    existing = next((g for g in state.tag_groups.values() if g.group_name == name), None)
    return existing or TagGroup(_new_id("et"), name, now, data.get("order") or 0)


def _strip_tags(state: WeComState, tag_ids: set[str]) -> None:
    for follow in state.follows.values():
        follow.tag_ids = [t for t in follow.tag_ids if t not in tag_ids]


@bp.post("/cgi-bin/externalcontact/get_corp_tag_list")
def get_corp_tag_list():
    """Fakes externalcontact/get_corp_tag_list: {"tag_id": [], "group_id": []}; with both,
    group_id wins, as documented."""
    _, state = contact_api()
    data = body()
    tag_ids, group_ids = data.get("tag_id") or [], data.get("group_id") or []
    with sandbox().lock:
        groups = []
        for group in state.tag_groups.values():
            if group_ids:
                tags = group.tags if group.group_id in group_ids else []
            else:
                tags = [t for t in group.tags if not tag_ids or t.id in tag_ids]
            if tags:
                groups.append(_group_json(group, tags))
        return ok(tag_group=groups)


@bp.post("/cgi-bin/externalcontact/add_corp_tag")
def add_corp_tag():
    """Fakes externalcontact/add_corp_tag: {"group_id" or "group_name", "order", "tag":
    [{"name", "order"}]} -> the group with the new tags. A name already in the group is
    40071; the same name twice in one call creates one tag."""
    _, state = contact_api()
    data = body()
    names = list(dict.fromkeys(_check_tag_name(t.get("name", "")) for t in data.get("tag") or []))
    if not names:
        raise ApiError(40058, "tag list required: no empty tag groups")
    orders = {t["name"]: t.get("order", 0) for t in data["tag"]}
    with sandbox().lock:
        now = int(sandbox().now())
        group = _group_for_new_tags(state, data, now)
        if any(tag.name in names for tag in group.tags):
            raise ApiError(40071, "tag name already exists in the group")
        if _corp_tag_count(state) + len(names) > CORP_TAGS_MAX:
            raise ApiError(40126, f"at most {CORP_TAGS_MAX} corp tags")
        created = [CorpTag(_new_id("et"), name, now, orders[name]) for name in names]
        group.tags.extend(created)
        state.tag_groups[group.group_id] = group
        return ok(tag_group=_group_json(group, created))


@bp.post("/cgi-bin/externalcontact/edit_corp_tag")
def edit_corp_tag():
    """Fakes externalcontact/edit_corp_tag: {"id" (tag or group), "name", "order"}."""
    _, state = contact_api()
    data = body()
    with sandbox().lock:
        target, name_field, sibling_names = _tag_or_group(state, data.get("id", ""))
        if data.get("name") is not None:
            if _check_tag_name(data["name"]) in sibling_names:
                raise ApiError(40071, "tag name already exists")
            setattr(target, name_field, data["name"])
        if data.get("order") is not None:
            target.order = data["order"]
        return ok()


def _tag_or_group(state: WeComState, target_id: str) -> tuple[CorpTag | TagGroup, str, list[str]]:
    """A group or tag by id, the field holding its name, and the names it must not take."""
    group = state.tag_groups.get(target_id)
    if group is not None:
        others = [g.group_name for g in state.tag_groups.values() if g is not group]
        return group, "group_name", others
    for group in state.tag_groups.values():
        for tag in group.tags:
            if tag.id == target_id:
                return tag, "name", [t.name for t in group.tags if t is not tag]
    raise ApiError(40068, "invalid tagid")


@bp.post("/cgi-bin/externalcontact/del_corp_tag")
def del_corp_tag():
    """Fakes externalcontact/del_corp_tag: {"tag_id": [], "group_id": []}. A group left
    without tags is deleted; deleted tags leave every customer."""
    _, state = contact_api()
    data = body()
    tag_ids, group_ids = set(data.get("tag_id") or []), set(data.get("group_id") or [])
    if not tag_ids and not group_ids:
        raise ApiError(40058, "tag_id or group_id required")
    with sandbox().lock:
        known_tags = {t.id for g in state.tag_groups.values() for t in g.tags}
        if not tag_ids <= known_tags or not group_ids <= state.tag_groups.keys():
            raise ApiError(40068, "invalid tagid")
        for group_id in group_ids:
            tag_ids |= {t.id for t in state.tag_groups.pop(group_id).tags}
        for group_id, group in list(state.tag_groups.items()):
            group.tags = [t for t in group.tags if t.id not in tag_ids]
            if not group.tags:
                del state.tag_groups[group_id]
        _strip_tags(state, tag_ids)
        return ok()


@bp.post("/cgi-bin/externalcontact/mark_tag")
def mark_tag():
    """Fakes externalcontact/mark_tag: {"userid", "external_userid", "add_tag", "remove_tag"}."""
    _, state = contact_api()
    data = body()
    add, remove = data.get("add_tag") or [], data.get("remove_tag") or []
    if not add and not remove:
        raise ApiError(40058, "add_tag or remove_tag required")
    with sandbox().lock:
        _contact_staff(state, data.get("userid", ""))
        follow = _follow(state, data["userid"], data.get("external_userid", ""))
        known_tags = {t.id for g in state.tag_groups.values() for t in g.tags}
        if not set(add) | set(remove) <= known_tags:
            raise ApiError(40068, "invalid tagid")
        kept = [t for t in follow.tag_ids if t not in remove]
        follow.tag_ids = list(dict.fromkeys(kept + [t for t in add if t not in remove]))
        return ok()


# --- group sends by staff -----------------------------------------------------


def _group_messages_this_month(state: WeComState, external_userid: str, now: float) -> int:
    month = _calendar_month(now)
    received = state.group_messages_received.get(external_userid, [])
    return sum(1 for at in received if _calendar_month(at) == month)


def _can_receive_group_message(state: WeComState, sender: str, ext: str, now: float) -> int:
    """The send status a group message to `ext` from `sender` would get now."""
    follow = state.follows.get((sender, ext))
    if follow is None or follow.deleted_by_customer:
        return NOT_A_FRIEND
    if _group_messages_this_month(state, ext, now) >= MSG_TEMPLATES_PER_CUSTOMER_PER_MONTH:
        return MONTHLY_LIMIT
    return SENT


@bp.post("/cgi-bin/externalcontact/add_msg_template")
def add_msg_template():
    """Fakes externalcontact/add_msg_template. chat_type "single": {"sender",
    "external_userid" (all the sender's customers when empty), "text", "attachments"};
    customers who are not the sender's, or who had their monthly group messages, go into
    fail_list. chat_type "group": {"sender" (required), "chat_id_list" (all the groups the
    sender owns when empty, at most 2000)}; groups the sender does not own (or dismissed)
    go into fail_list. The job waits for the sender to confirm (confirm_msg_template).
    The sandbox requires a sender for both."""
    tenant, state = contact_api()
    data = body()
    chat_type = data.get("chat_type", "single")
    if chat_type not in ("single", "group"):
        raise ApiError(40058, "chat_type must be single or group")
    attachments = _check_attachments(tenant, data)
    if not (data.get("text") or {}).get("content") and not attachments:
        raise ApiError(44004, "empty content")
    requested = list(data.get("external_userid") or [])
    if len(requested) > MSG_TEMPLATE_CUSTOMERS_MAX:
        raise ApiError(40058, f"at most {MSG_TEMPLATE_CUSTOMERS_MAX} external_userid")
    chat_ids = list(data.get("chat_id_list") or [])
    if len(chat_ids) > MSG_TEMPLATE_CHATS_MAX:
        raise ApiError(40058, f"at most {MSG_TEMPLATE_CHATS_MAX} chat_id_list")
    with sandbox().lock:
        sender = _contact_staff(state, data.get("sender", "")).userid
        now = sandbox().now()
        if chat_type == "group":
            statuses = _group_chat_statuses(tenant, state, sender, chat_ids, now)
        else:
            if not requested:
                requested = [f.external_userid for f in _follows_of_staff(state, sender)]
            statuses = {
                ext: _can_receive_group_message(state, sender, ext, now) for ext in requested
            }
        recipients = [target for target, status in statuses.items() if status == SENT]
        if not recipients:
            raise ApiError(41048, "no customer can receive it")
        template = MsgTemplate(
            msgid=_new_id("msg"),
            sender=sender,
            external_userids=recipients if chat_type == "single" else [],
            fail_list=[target for target, status in statuses.items() if status != SENT],
            text=data.get("text"),
            attachments=attachments,
            create_time=int(now),
            results=dict.fromkeys(recipients, NOT_SENT),
            chat_type=chat_type,
            chat_ids=recipients if chat_type == "group" else [],
        )
        state.msg_templates[template.msgid] = template
        return ok(fail_list=template.fail_list, msgid=template.msgid)


def _sender_groups(tenant: Tenant, sender: str) -> dict:
    """The live customer groups `sender` owns, by chat_id (wecom_groups keeps the groups in
    the tenant's data; it imports this module, so they are read here by key)."""
    groups = tenant.data.get(f"{WECOM}_groups", {})
    return {
        chat_id: group
        for chat_id, group in groups.items()
        if group.owner == sender and group.status == 0
    }


def _group_chat_statuses(
    tenant: Tenant, state: WeComState, sender: str, chat_ids: list[str], now: float
) -> dict[str, int]:
    """The send status a group send to each chat would get now: NOT_A_FRIEND for a group
    the sender does not own, MONTHLY_LIMIT for one that had its 4 this month."""
    owned = _sender_groups(tenant, sender)
    return {
        chat_id: NOT_A_FRIEND
        if chat_id not in owned
        else MONTHLY_LIMIT
        if _group_messages_this_month(state, chat_id, now) >= MSG_TEMPLATES_PER_CUSTOMER_PER_MONTH
        else SENT
        for chat_id in (chat_ids or list(owned))
    }


@bp.post("/cgi-bin/externalcontact/get_groupmsg_send_result")
def get_groupmsg_send_result():
    """Fakes externalcontact/get_groupmsg_send_result: {"msgid", "userid", "limit", "cursor"}
    -> send_list with status 0 not sent, 1 sent, 2 not a friend, 3 monthly limit reached."""
    _, state = contact_api()
    data = body()
    limit = min(int(data.get("limit") or 500), 1000)
    with sandbox().lock:
        template = state.msg_templates.get(data.get("msgid", ""))
        if template is None or data.get("userid", template.sender) != template.sender:
            raise ApiError(41047, "invalid msgid")
        key = "chat_id" if template.chat_type == "group" else "external_userid"
        rows = [
            {
                key: target,
                "userid": template.sender,
                "status": status,
                **({"send_time": template.send_time} if status == SENT else {}),
            }
            for target, status in template.results.items()
        ]
        page, next_cursor = _page(rows, data.get("cursor") or "", limit)
        return ok(send_list=page, next_cursor=next_cursor)


# --- app messages to staff -----------------------------------------------------


def _check_app_message(data: dict, tenant: Tenant) -> tuple[str, dict]:
    agentid = data.get("agentid")
    if agentid in (None, ""):
        raise ApiError(41011, "missing agentid")
    if str(agentid) != tenant.agent_id:
        raise ApiError(40056, "invalid agentid")
    msgtype = data.get("msgtype")
    if msgtype not in APP_MESSAGE_TYPES:
        raise ApiError(40008, "invalid message type")
    content = data.get(msgtype) or {}
    if msgtype == "textcard":
        if not content.get("title"):
            raise ApiError(41016, "missing title")
        if not content.get("description"):
            raise ApiError(41033, "missing description")
        if not content.get("url"):
            raise ApiError(41010, "missing url")
    elif not content.get("content"):
        raise ApiError(44004, "empty content")
    return msgtype, content


def _member_limit(state: WeComState, userid: str) -> RateLimit:
    return state.app_message_limits.setdefault(
        userid, RateLimit(APP_MESSAGES_PER_MEMBER_PER_MINUTE, APP_MESSAGES_PER_MEMBER_PER_HOUR)
    )


@bp.post("/cgi-bin/message/send")
def message_send():
    """Fakes POST /cgi-bin/message/send with the agent's token: {"touser": "a|b" or "@all",
    "msgtype": text/textcard/markdown, "agentid", ...}. Unknown members come back in
    invaliduser. Past 30 a minute or 1000 an hour to one member, the message is dropped
    for that member while the call still answers 0, as WeCom does."""
    tenant, secret_name, state = authenticated()
    if secret_name != AGENT_SECRET:
        raise ApiError(301002, "not allow operate another agent with this accesstoken.")
    data = body()
    msgtype, content = _check_app_message(data, tenant)
    touser, toparty, totag = (str(data.get(k) or "") for k in ("touser", "toparty", "totag"))
    if not (touser or toparty or totag):
        raise ApiError(82001, "touser, toparty and totag are all empty")
    with sandbox().lock:
        requested = list(state.staff) if touser == "@all" else [u for u in touser.split("|") if u]
        if len(requested) > APP_MESSAGE_USERS_MAX:
            raise ApiError(40032, f"at most {APP_MESSAGE_USERS_MAX} users")
        valid = [u for u in requested if u in state.staff]
        if not valid:
            raise ApiError(81013, "user & party & tag all invalid")
        now, msgid = sandbox().now(), _new_id("msg")
        for userid in valid:
            limit = _member_limit(state, userid)
            delivered = limit.allows(now)
            if delivered:
                limit.add(now)
            state.app_messages.append(AppMessage(msgid, userid, msgtype, content, now, delivered))
        return ok(
            invaliduser="|".join(u for u in requested if u not in state.staff),
            invalidparty=toparty,  # the sandbox has no departments or address-book tags
            invalidtag=totag,
            unlicenseduser="",
            msgid=msgid,
        )


# --- in-process actions: what people do in the WeCom client ---------------------


def _deliver_contact_event(
    sandbox: Sandbox, tenant: Tenant, change_type: str, follow_key: tuple[str, str], **extra
) -> None:
    userid, external_userid = follow_key
    xml = simulate.wecom_contact_event(
        tenant.app_id,
        change_type,
        user_id=userid,
        external_user_id=external_userid,
        at=int(sandbox.now()),
        **extra,
    )
    sandbox.deliver(tenant, xml)


def add_staff(
    sandbox: Sandbox,
    tenant: Tenant,
    userid: str,
    name: str,
    *,
    customer_contact: bool = True,
    email: str = "",
) -> Staff:
    """A staff member joins the corp (no customer-contact callback for that)."""
    with sandbox.lock:
        staff = Staff(userid, name, customer_contact, email)
        state_of(tenant).staff[userid] = staff
        return staff


def add_external_contact(
    sandbox: Sandbox,
    tenant: Tenant,
    *,
    userid: str,
    external_userid: str,
    name: str,
    corp_name: str = "",
    position: str = "",
    unionid: str = "",
    state: str = "",
    half: bool = False,
    add_way: int = ADD_WAY_QR_CODE,
) -> str | None:
    """A customer adds a staff member (say by scanning a 联系我 code with `state`): creates
    the contact and the follow relation and delivers add_external_contact (or, with
    half=True, add_half_external_contact). Returns the WelcomeCode, None when the two have
    chatted before (then the event carries none)."""
    with sandbox.lock:
        corp = state_of(tenant)
        staff = corp.staff.get(userid)
        if staff is None:
            raise ValueError(f"unknown staff member {userid}: add_staff first")
        if not staff.customer_contact:
            raise ValueError(f"{userid} has no customer-contact permission")
        existing = corp.follows.get((userid, external_userid))
        if existing is not None and not existing.deleted_by_customer:
            raise ValueError(f"{external_userid} is already {userid}'s customer")
        now = sandbox.now()
        corp.external_contacts.setdefault(
            external_userid,
            ExternalContact(
                external_userid,
                name,
                type=WECOM_USER if corp_name else WECHAT_USER,
                corp_name=corp_name,
                position=position if corp_name else "",
                unionid=unionid,
            ),
        )
        corp.follows[(userid, external_userid)] = FollowUser(
            userid=userid,
            external_userid=external_userid,
            createtime=int(now),
            oper_userid=external_userid,  # the customer initiated the add
            add_way=add_way,
            state=state,
        )
        code = None
        if (userid, external_userid) not in corp.chatted:
            code = WelcomeCode(secrets.token_urlsafe(32), userid, external_userid, now)
            corp.welcome_codes[code.code] = code
        change_type = "add_half_external_contact" if half else "add_external_contact"
        _deliver_contact_event(
            sandbox,
            tenant,
            change_type,
            (userid, external_userid),
            State=state or None,
            WelcomeCode=code.code if code else None,
        )
        return code.code if code else None


def create_corp_tag_in_console(
    sandbox: Sandbox, tenant: Tenant, *, group_name: str, name: str
) -> str:
    """An administrator adds a corp tag in the WeCom console: delivers change_external_tag
    (create). Returns the new tag's id."""
    with sandbox.lock:
        state = state_of(tenant)
        now = int(sandbox.now())
        group = next((g for g in state.tag_groups.values() if g.group_name == group_name), None)
        if group is None:
            group = TagGroup(_new_id("et"), group_name, now, 0)
            state.tag_groups[group.group_id] = group
        tag = CorpTag(_new_id("et"), name, now, 0)
        group.tags.append(tag)
        sandbox.deliver(tenant, simulate.wecom_tag_event(tenant.app_id, "create", tag_id=tag.id))
        return tag.id


EDITABLE_FOLLOW_FIELDS = {"remark", "description", "remark_corp_name", "remark_mobiles", "tag_ids"}


def edit_external_contact(
    sandbox: Sandbox, tenant: Tenant, *, userid: str, external_userid: str, **changes
) -> FollowUser:
    """A staff member edits a customer in the client (remark, description, remark_corp_name,
    remark_mobiles, tag_ids): delivers edit_external_contact."""
    unknown = changes.keys() - EDITABLE_FOLLOW_FIELDS
    if unknown:
        raise TypeError(f"not editable: {sorted(unknown)}")
    with sandbox.lock:
        follow = state_of(tenant).follows[(userid, external_userid)]
        for name, value in changes.items():
            setattr(follow, name, value)
        _deliver_contact_event(sandbox, tenant, "edit_external_contact", (userid, external_userid))
        return follow


def delete_external_contact(
    sandbox: Sandbox, tenant: Tenant, *, userid: str, external_userid: str, by_transfer=False
) -> None:
    """The staff member deletes the customer (or a transfer removes them, by_transfer=True):
    delivers del_external_contact, with Source=DELETE_BY_TRANSFER for a transfer."""
    with sandbox.lock:
        del state_of(tenant).follows[(userid, external_userid)]
        source = "DELETE_BY_TRANSFER" if by_transfer else None
        _deliver_contact_event(
            sandbox, tenant, "del_external_contact", (userid, external_userid), Source=source
        )


def delete_follow_user(
    sandbox: Sandbox, tenant: Tenant, *, userid: str, external_userid: str
) -> None:
    """The customer deletes the staff member: the relation stays on the staff side, flagged
    (group sends to them fail); delivers del_follow_user."""
    with sandbox.lock:
        state_of(tenant).follows[(userid, external_userid)].deleted_by_customer = True
        _deliver_contact_event(sandbox, tenant, "del_follow_user", (userid, external_userid))


def transfer_fail(
    sandbox: Sandbox,
    tenant: Tenant,
    *,
    userid: str,
    external_userid: str,
    reason: str = "customer_refused",
) -> None:
    """A customer transfer to `userid` failed (customer_refused or customer_limit_exceed)."""
    with sandbox.lock:
        _deliver_contact_event(
            sandbox, tenant, "transfer_fail", (userid, external_userid), FailReason=reason
        )


def mark_chatted(sandbox: Sandbox, tenant: Tenant, *, userid: str, external_userid: str) -> None:
    """The customer and the staff member exchanged messages: their pending WelcomeCode is
    refused (41051) and a later re-add carries none."""
    with sandbox.lock:
        state_of(tenant).chatted.add((userid, external_userid))


def confirm_msg_template(sandbox: Sandbox, tenant: Tenant, msgid: str) -> MsgTemplate:
    """The sender confirms a group send in the client: each customer gets it unless they
    stopped being a friend or reached the monthly limit meanwhile."""
    with sandbox.lock:
        corp = state_of(tenant)
        template = corp.msg_templates[msgid]
        if template.status == CONFIRMED:
            return template
        now = sandbox.now()
        if template.chat_type == "group":
            statuses = _group_chat_statuses(tenant, corp, template.sender, template.chat_ids, now)
        else:
            statuses = {
                ext: _can_receive_group_message(corp, template.sender, ext, now)
                for ext in template.external_userids
            }
        for target, status in statuses.items():
            template.results[target] = status
            if status == SENT:
                corp.group_messages_received.setdefault(target, []).append(now)
        template.status, template.send_time = CONFIRMED, int(now)
        return template


def scan_contact_way(
    sandbox: Sandbox,
    tenant: Tenant,
    *,
    state: str,
    external_userid: str,
    name: str,
    pick: str | int | None = None,
    **customer,
) -> str:
    """A customer scans the 联系我 code with `state` and adds whoever WeCom hands them: one
    of the code's current `user` list, at random as WeCom does (`pick`: "first" for the
    list's first member, an int to seed the choice). A code with skip_verify adds at once
    (add_external_contact); one without sends a friend request the member accepts later
    (accept_contact_request), and WeCom says nothing until then. Returns the userid
    chosen. ValueError for an unknown code or one whose list is empty."""
    with sandbox.lock:
        way = contact_way_for_state(sandbox, tenant, state)
        if way is None:
            raise ValueError(f"no 联系我 code with state {state}")
        if not way.user:
            raise ValueError(f"the code {state} names no member to add")
        if pick == "first":
            userid = way.user[0]
        elif isinstance(pick, int):
            userid = random.Random(pick).choice(way.user)
        else:
            userid = secrets.choice(way.user)
        request = {"external_userid": external_userid, "name": name, "state": state, **customer}
        if not way.skip_verify:
            state_of(tenant).contact_requests[(userid, external_userid)] = request
            return userid
    add_external_contact(sandbox, tenant, userid=userid, **request)
    return userid


def accept_contact_request(
    sandbox: Sandbox, tenant: Tenant, *, userid: str, external_userid: str
) -> str | None:
    """The member accepts a customer's friend request (a code without skip_verify): the
    add happens now and add_external_contact is delivered. Returns the WelcomeCode."""
    with sandbox.lock:
        request = state_of(tenant).contact_requests.pop((userid, external_userid))
    return add_external_contact(sandbox, tenant, userid=userid, **request)


def contact_requests(sandbox: Sandbox, tenant: Tenant) -> list[tuple[str, str]]:
    """The friend requests waiting for a member: (userid, external_userid)."""
    with sandbox.lock:
        return list(state_of(tenant).contact_requests)


def contact_way_for_state(sandbox: Sandbox, tenant: Tenant, state: str) -> ContactWay | None:
    """The newest 联系我 configuration with this state, for the simulator to pick its staff."""
    with sandbox.lock:
        ways = [w for w in state_of(tenant).contact_ways.values() if w.state == state]
        return ways[-1] if ways else None
