"""The Official Account API (api.weixin.qq.com), served under /oa, and OAuth
(open.weixin.qq.com) under /open; plus the follower actions (follow, click,
send_text, ...) with which the simulator and tests make WeChat call Harpoon.

Each endpoint fakes the real API of the same path: same request and answer
shapes (success answers carry errcode only where the real one does), and the
limits and errcodes WECHAT.md lists. Daily and monthly limits count calendar
days and months in Beijing time (UTC+8). All time is the sandbox clock, so
tests advance it.
"""

import copy
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode, urlsplit, urlunsplit

from flask import Blueprint, Response, jsonify, redirect, request
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException

from wechat import simulate
from wechat.callbacks import CallbackRejected, parse_xml
from wechat.sandbox import media, wecom_client
from wechat.sandbox.core import OA, WECOM, ApiError, Sandbox, Tenant, body, ok
from wechat.sandbox.core import sandbox as current_sandbox

bp = Blueprint("sandbox_oa", __name__, url_prefix="/oa")
open_bp = Blueprint("sandbox_open", __name__, url_prefix="/open")

SERVICE = "service"
SUBSCRIPTION = "subscription"
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

# --- platform limits --------------------------------------------------------

USERS_PER_BATCHGET = 100
OPENIDS_PER_PAGE = 10_000

MAX_TAGS = 100
MAX_TAGS_PER_USER = 20
MAX_TAG_NAME_CHARS = 30
MAX_FANS_TO_DELETE_TAG = 100_000
RESERVED_TAG_IDS = frozenset({0, 1, 2})
FIRST_TAG_ID = 100
OPENIDS_PER_TAGGING = 50

MAX_TOP_BUTTONS = 3
MAX_SUB_BUTTONS = 5
MAX_TOP_NAME_BYTES = 16
MAX_SUB_NAME_BYTES = 60
MAX_KEY_BYTES = 128
MAX_URL_BYTES = 1024
MENU_CREATES_PER_DAY = 2000  # menu/create and menu/addconditional
MENU_DELETES_PER_DAY = 2000  # menu/delete and menu/delconditional

MASS_MESSAGES_PER_FOLLOWER_PER_MONTH = 4  # service accounts
MASS_SENDS_PER_DAY_SUBSCRIPTION = 1
MASS_CALLS_PER_MINUTE = 60
MIN_MASS_OPENIDS = 2
MAX_MASS_OPENIDS = 10_000
MAX_CLIENTMSGID_BYTES = 64
CLIENTMSGID_SECONDS = 24 * 3600

MAX_TEMPLATES = 25
TEMPLATE_SENDS_PER_DAY = 100_000
MASS_PREVIEWS_PER_DAY = 100

QR_DEFAULT_EXPIRE_SECONDS = 60
QR_MAX_EXPIRE_SECONDS = 2_592_000
MAX_PERMANENT_QRCODES = 100_000
MAX_PERMANENT_SCENE_ID = 100_000
MAX_TEMPORARY_SCENE_ID = 2**32 - 1
MAX_SCENE_STR_CHARS = 64

OAUTH_CODE_SECONDS = 300
OAUTH_TOKEN_SECONDS = 7200


@dataclass(frozen=True)
class WindowRule:
    name: str
    seconds: float
    quota: int


class ServiceWindows:
    """How long, and for how many custom/send messages, a follower's action opens
    the customer-service window. The platform's numbers are uncertain: change these
    (a test may monkeypatch them) when production shows otherwise."""

    AFTER_MESSAGE = WindowRule("message", 48 * 3600, 5)
    AFTER_EVENT = WindowRule("event", 60, 3)  # menu click, follow, QR scan


# --- errcodes ---------------------------------------------------------------

TOP, SUB = "button", "sub_button"

# A menu violation's errcode, for a top-level button and for a sub-button
# (the platform's global return-code table).
MENU_ERRORS: dict[tuple[str, str], tuple[int, str]] = {
    ("count", TOP): (40016, "invalid button size"),
    ("count", SUB): (40023, "invalid sub button size"),
    ("type", TOP): (40017, "invalid button type"),
    ("type", SUB): (40024, "invalid sub button type"),
    ("name", TOP): (40018, "invalid button name size"),
    ("name", SUB): (40025, "invalid sub button name size"),
    ("key", TOP): (40019, "invalid button key size"),
    ("key", SUB): (40026, "invalid sub button key size"),
    ("url", TOP): (40020, "invalid button url size"),
    ("url", SUB): (40027, "invalid sub button url size"),
    ("domain", TOP): (40055, "invalid button url domain"),
    ("domain", SUB): (40054, "invalid sub button url domain"),
    ("level", SUB): (40022, "invalid sub button level"),
}

DAILY_QUOTA_USED = "reach max api daily quota limit"


def _invalid_openid() -> ApiError:
    return ApiError(40003, "invalid openid")


def _invalid_tag() -> ApiError:
    return ApiError(45159, "invalid tag id")


def _data_format_error() -> ApiError:
    return ApiError(47001, "data format error")


# --- state ------------------------------------------------------------------


@dataclass
class ServiceWindow:
    """An open customer-service window: custom/send may reach the follower until
    `expires_at`, `quota` times."""

    expires_at: float
    quota: int
    used: int = 0


@dataclass
class Received:
    """A message the OA sent a follower (mass, custom or template), for inspection."""

    kind: str
    msg_id: int
    msgtype: str
    content: dict
    at: float


MASS, CUSTOM, TEMPLATE, PREVIEW = "mass", "custom", "template", "preview"


@dataclass
class Follower:
    openid: str
    unionid: str = ""
    subscribe: int = 1
    subscribe_time: int = 0
    subscribe_scene: str = "ADD_SCENE_SEARCH"
    qr_scene: int = 0
    qr_scene_str: str = ""
    tagid_list: list[int] = field(default_factory=list)
    # Not in user/info: what the sandbox tracks about the follower.
    windows: dict[str, ServiceWindow] = field(default_factory=dict)  # by WindowRule.name
    received: list[Received] = field(default_factory=list)

    def mass_messages_in(self, month: str) -> int:
        return sum(1 for r in self.received if r.kind == MASS and _month(r.at) == month)


USER_INFO_FIELDS = (
    "subscribe",
    "openid",
    "subscribe_time",
    "unionid",
    "tagid_list",
    "subscribe_scene",
    "qr_scene",
    "qr_scene_str",
)


@dataclass
class Tag:
    id: int
    name: str


@dataclass
class Menu:
    menuid: int
    button: list[dict]
    matchrule: dict[str, str] = field(default_factory=dict)  # empty for the default menu
    created_at: float = 0.0


@dataclass
class MassJob:
    """One mass send. Counts as in MASSSENDJOBFINISH: `filter_count` is how many
    were left to send to after filtering (e.g. followers past their monthly 4)."""

    msg_id: int
    msg_data_id: int
    msgtype: str
    content: dict
    audience: dict  # {"is_to_all": true} / {"tag_id": N} / {"touser": [...]}
    clientmsgid: str
    created_at: float
    total_count: int = 0
    filter_count: int = 0
    sent_count: int = 0
    error_count: int = 0
    recipients: list[str] = field(default_factory=list)


@dataclass
class Template:
    template_id: str
    template_id_short: str
    keyword_name_list: list[str] = field(default_factory=list)


@dataclass
class QrCode:
    ticket: str
    action_name: str
    scene_id: int
    scene_str: str
    url: str
    expires_at: float | None = None  # None: permanent

    @property
    def scene(self) -> str:
        """The scene as EventKey carries it."""
        return self.scene_str or str(self.scene_id)

    def valid_at(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at


@dataclass
class OAuthCode:
    code: str
    openid: str
    scope: str
    issued_at: float
    used: bool = False


@dataclass
class DailyQuota:
    """Successful calls counted per calendar day (Beijing time)."""

    day: str = ""
    used: int = 0

    def take(self, now: float, limit: int, errcode=45009, errmsg=DAILY_QUOTA_USED) -> None:
        today = datetime.fromtimestamp(now, BEIJING).strftime("%Y-%m-%d")
        if today != self.day:
            self.day, self.used = today, 0
        if self.used >= limit:
            raise ApiError(errcode, errmsg)
        self.used += 1


@dataclass
class OAState:
    followers: dict[str, Follower] = field(default_factory=dict)  # in following order
    tags: dict[int, Tag] = field(default_factory=dict)
    next_tag_id: int = FIRST_TAG_ID
    menu: Menu | None = None
    conditional_menus: list[Menu] = field(default_factory=list)  # oldest first
    mass_jobs: list[MassJob] = field(default_factory=list)
    mass_calls: list[float] = field(default_factory=list)  # the last minute's, for the rate
    templates: dict[str, Template] = field(default_factory=dict)
    qrcodes: dict[str, QrCode] = field(default_factory=dict)  # by ticket
    oauth_codes: dict[str, OAuthCode] = field(default_factory=dict)
    menu_creates: DailyQuota = field(default_factory=DailyQuota)
    menu_deletes: DailyQuota = field(default_factory=DailyQuota)
    mass_sends: DailyQuota = field(default_factory=DailyQuota)  # subscription accounts
    template_sends: DailyQuota = field(default_factory=DailyQuota)
    mass_previews: DailyQuota = field(default_factory=DailyQuota)
    # Message, menu and job ids; a random start so two sandboxes rarely share an id.
    last_id: int = field(default_factory=lambda: 10**9 + secrets.randbelow(10**9))

    def new_id(self) -> int:
        self.last_id += 1
        return self.last_id


def state_of(tenant: Tenant) -> OAState:
    return tenant.data.setdefault(OA, OAState())


def authenticated() -> tuple[Tenant, OAState]:
    tenant, _ = current_sandbox().authenticate(OA, request.args.get("access_token"))
    return tenant, state_of(tenant)


def inspect(tenant: Tenant) -> dict:
    """Everything this OA holds: followers (with the messages they received and their
    open windows), tags, menus, mass jobs, templates, QR codes, OAuth codes, quotas."""
    return {"kind": OA, **asdict(state_of(tenant))}


def original_id(tenant: Tenant) -> str:
    """The OA's original id (gh_...), the ToUserName of its callbacks."""
    return f"gh_{tenant.app_id[-12:]}"


def _month(at: float) -> str:
    return datetime.fromtimestamp(at, BEIJING).strftime("%Y-%m")


def _as_int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _utf8_len(value) -> int:
    return len(str(value).encode())


def _follower(state: OAState, openid: str) -> Follower:
    follower = state.followers.get(openid)
    if follower is None:
        raise _invalid_openid()
    return follower


# --- token and users ----------------------------------------------------------


@bp.get("/cgi-bin/token")
def token():
    """cgi-bin/token: an access token for appid + secret."""
    if request.args.get("grant_type") != "client_credential":
        raise ApiError(40002, "invalid grant_type")
    tenant = current_sandbox().tenant(request.args.get("appid", ""))
    if request.args.get("secret") != tenant.secrets.get("app"):
        raise ApiError(40125, "invalid appsecret")
    issued = current_sandbox().issue_token(tenant, "app", reuse=False)
    return ok(access_token=issued.value, expires_in=current_sandbox().TOKEN_SECONDS)


@bp.get("/cgi-bin/user/info")
def user_info():
    """user/info: one user; no nickname or avatar any more."""
    _, state = authenticated()
    with current_sandbox().lock:
        return _user_json(_follower(state, request.args.get("openid", "")))


@bp.post("/cgi-bin/user/info/batchget")
def batch_user_info():
    """user/info/batchget: {"user_list": [{"openid", "lang"}]}, at most 100 a call."""
    _, state = authenticated()
    wanted = body().get("user_list")
    if not isinstance(wanted, list) or not all(isinstance(item, dict) for item in wanted):
        raise _data_format_error()
    if len(wanted) > USERS_PER_BATCHGET:
        raise ApiError(45008, "user list size out of limit")
    with current_sandbox().lock:
        users = [_user_json(_follower(state, str(item.get("openid", "")))) for item in wanted]
    return {"user_info_list": users}


@bp.get("/cgi-bin/user/get")
def list_followers():
    """user/get: followers' openids, 10,000 a page after `next_openid`."""
    _, state = authenticated()
    with current_sandbox().lock:
        total = sum(1 for f in state.followers.values() if f.subscribe)
        page = _openid_page(state, request.args.get("next_openid", ""), lambda _: True)
    return {"total": total, **page}


def _user_json(follower: Follower) -> dict:
    if not follower.subscribe:
        return {"subscribe": 0, "openid": follower.openid}
    data = {name: copy.copy(getattr(follower, name)) for name in USER_INFO_FIELDS}
    if not follower.unionid:
        data.pop("unionid")
    return data


def _openid_page(state: OAState, after: str, wanted: Callable[[Follower], bool]) -> dict:
    """A page of current followers that `wanted` accepts, after the openid `after`, as
    user/get and user/tag/get answer: no "data" at all once nothing is left."""
    followers = list(state.followers.values())
    if after:
        if after not in state.followers:
            raise _invalid_openid()
        followers = followers[list(state.followers).index(after) + 1 :]
    page = [f.openid for f in followers if f.subscribe and wanted(f)][:OPENIDS_PER_PAGE]
    answer: dict = {"count": len(page), "next_openid": page[-1] if page else ""}
    if page:
        answer["data"] = {"openid": page}
    return answer


# --- tags -----------------------------------------------------------------------


@bp.post("/cgi-bin/tags/create")
def create_tag():
    """tags/create: {"tag": {"name"}} -> {"tag": {"id", "name"}}; ids start at 100."""
    _, state = authenticated()
    name = _tag_name(body())
    with current_sandbox().lock:
        _check_unique_name(state, name)
        if len(state.tags) >= MAX_TAGS:
            raise ApiError(45056, "too many tags")
        tag = Tag(state.next_tag_id, name)
        state.tags[tag.id] = tag
        state.next_tag_id += 1
    return {"tag": asdict(tag)}


@bp.get("/cgi-bin/tags/get")
def list_tags():
    """tags/get: {"tags": [{"id", "name", "count"}]}."""
    _, state = authenticated()
    with current_sandbox().lock:
        return {
            "tags": [{**asdict(t), "count": _fan_count(state, t.id)} for t in state.tags.values()]
        }


@bp.post("/cgi-bin/tags/update")
def update_tag():
    """tags/update: {"tag": {"id", "name"}}; the reserved tags 0-2 cannot change."""
    _, state = authenticated()
    data = body()
    name = _tag_name(data)
    with current_sandbox().lock:
        tag = _editable_tag(state, (data.get("tag") or {}).get("id"))
        _check_unique_name(state, name, except_id=tag.id)
        tag.name = name
    return ok()


@bp.post("/cgi-bin/tags/delete")
def delete_tag():
    """tags/delete: {"tag": {"id"}}; also untags its followers."""
    _, state = authenticated()
    data = body()
    with current_sandbox().lock:
        tag = _editable_tag(state, (data.get("tag") or {}).get("id"))
        if _fan_count(state, tag.id) > MAX_FANS_TO_DELETE_TAG:
            raise ApiError(45057, "can't delete the tag that has too many fans")
        del state.tags[tag.id]
        for follower in state.followers.values():
            if tag.id in follower.tagid_list:
                follower.tagid_list.remove(tag.id)
    return ok()


@bp.post("/cgi-bin/tags/members/batchtagging")
def tag_members():
    """tags/members/batchtagging: {"openid_list", "tagid"}, at most 50 openids; all or none."""
    _, state = authenticated()
    data = body()
    with current_sandbox().lock:
        tag, followers = _tagging_request(state, data)
        adding = [f for f in followers if tag.id not in f.tagid_list]
        if any(len(f.tagid_list) >= MAX_TAGS_PER_USER for f in adding):
            raise ApiError(45059, "tag number of user exceeds limit")
        for follower in adding:
            follower.tagid_list.append(tag.id)
    return ok()


@bp.post("/cgi-bin/tags/members/batchuntagging")
def untag_members():
    """tags/members/batchuntagging: {"openid_list", "tagid"}, at most 50 openids."""
    _, state = authenticated()
    data = body()
    with current_sandbox().lock:
        tag, followers = _tagging_request(state, data)
        for follower in followers:
            if tag.id in follower.tagid_list:
                follower.tagid_list.remove(tag.id)
    return ok()


@bp.post("/cgi-bin/tags/getidlist")
def user_tag_ids():
    """tags/getidlist: {"openid"} -> {"tagid_list"}."""
    _, state = authenticated()
    data = body()
    with current_sandbox().lock:
        return {"tagid_list": list(_follower(state, str(data.get("openid", ""))).tagid_list)}


@bp.post("/cgi-bin/user/tag/get")
def tag_followers():
    """user/tag/get: {"tagid", "next_openid"} -> a page of the tag's followers."""
    _, state = authenticated()
    data = body()
    with current_sandbox().lock:
        tag = _tag(state, data.get("tagid"))
        after = str(data.get("next_openid") or "")
        return _openid_page(state, after, lambda f: tag.id in f.tagid_list)


def _tag_name(data: dict) -> str:
    name = str((data.get("tag") or {}).get("name") or "")
    if not name or len(name) > MAX_TAG_NAME_CHARS:
        raise ApiError(45158, "tag name too long")
    return name


def _check_unique_name(state: OAState, name: str, except_id: int | None = None) -> None:
    if any(t.name == name and t.id != except_id for t in state.tags.values()):
        raise ApiError(45157, "invalid tag name")


def _tag(state: OAState, tag_id) -> Tag:
    tag = state.tags.get(_as_int(tag_id))
    if tag is None:
        raise _invalid_tag()
    return tag


def _editable_tag(state: OAState, tag_id) -> Tag:
    if _as_int(tag_id) in RESERVED_TAG_IDS:
        raise ApiError(45058, "can't modify sys tag")
    return _tag(state, tag_id)


def _fan_count(state: OAState, tag_id: int) -> int:
    return sum(1 for f in state.followers.values() if f.subscribe and tag_id in f.tagid_list)


def _tagging_request(state: OAState, data: dict) -> tuple[Tag, list[Follower]]:
    openids = data.get("openid_list")
    if not isinstance(openids, list) or not 1 <= len(openids) <= OPENIDS_PER_TAGGING:
        raise ApiError(40032, "invalid openid list size")
    tag = _tag(state, data.get("tagid"))
    return tag, [_follower(state, str(openid)) for openid in openids]


# --- menus ------------------------------------------------------------------------

BUTTON_TYPES = frozenset(
    {
        "click",
        "view",
        "scancode_push",
        "scancode_waitmsg",
        "pic_sysphoto",
        "pic_photo_or_album",
        "pic_weixin",
        "location_select",
        "media_id",
        "view_limited",
        "article_id",
        "article_view_limited",
        "miniprogram",
    }
)
KEY_BUTTON_TYPES = frozenset(
    {
        "click",
        "scancode_push",
        "scancode_waitmsg",
        "pic_sysphoto",
        "pic_photo_or_album",
        "pic_weixin",
        "location_select",
    }
)
URL_BUTTON_TYPES = frozenset({"view", "miniprogram"})
# Button types that publish material, and the field naming it.
MATERIAL_FIELDS = {
    "media_id": "media_id",
    "view_limited": "media_id",
    "article_id": "article_id",
    "article_view_limited": "article_id",
}
MATCHRULE_FIELDS = ("tag_id", "client_platform_type")
REFUSED_MATCHRULE_FIELDS = ("sex", "country", "province", "city", "language")


@bp.post("/cgi-bin/menu/create")
def create_menu():
    """menu/create: {"button": [...]}, the default menu (replacing the previous one)."""
    _, state = authenticated()
    buttons = _valid_buttons(body().get("button"))
    with current_sandbox().lock:
        now = current_sandbox().now()
        state.menu_creates.take(now, MENU_CREATES_PER_DAY)
        state.menu = Menu(state.new_id(), buttons, created_at=now)
    return ok()


@bp.get("/cgi-bin/menu/get")
def get_menu():
    """menu/get: {"menu": {"button", "menuid"}, "conditionalmenu": [...]}, or 46003."""
    _, state = authenticated()
    with current_sandbox().lock:
        if state.menu is None:
            raise ApiError(46003, "menu no exist")
        conditional = [asdict(m) for m in state.conditional_menus]
        for menu in conditional:
            del menu["created_at"]
        default = {"button": state.menu.button, "menuid": state.menu.menuid}
        return {"menu": default, "conditionalmenu": conditional}


@bp.get("/cgi-bin/get_current_selfmenu_info")
def current_menu_info():
    """get_current_selfmenu_info: the default menu, sub-buttons under {"list": [...]}."""
    _, state = authenticated()
    with current_sandbox().lock:
        buttons = state.menu.button if state.menu else []
        return {
            "is_menu_open": int(state.menu is not None),
            "selfmenu_info": {"button": [_selfmenu_button(b) for b in buttons]},
        }


@bp.get("/cgi-bin/menu/delete")
def delete_menu():
    """menu/delete: the default menu, and with it every conditional menu."""
    _, state = authenticated()
    with current_sandbox().lock:
        state.menu_deletes.take(current_sandbox().now(), MENU_DELETES_PER_DAY)
        state.menu = None
        state.conditional_menus.clear()
    return ok()


@bp.post("/cgi-bin/menu/addconditional")
def add_conditional_menu():
    """menu/addconditional: {"button", "matchrule"} -> {"menuid"}; needs a default menu.
    Only tag_id and client_platform_type match today (sex/region/language: 65320)."""
    _, state = authenticated()
    data = body()
    buttons = _valid_buttons(data.get("button"))
    matchrule = _valid_matchrule(data.get("matchrule"))
    with current_sandbox().lock:
        if state.menu is None:
            raise ApiError(65303, "there is no selfmenu, please create selfmenu first")
        now = current_sandbox().now()
        state.menu_creates.take(now, MENU_CREATES_PER_DAY)
        menu = Menu(state.new_id(), buttons, matchrule, now)
        state.conditional_menus.append(menu)
    return {"menuid": str(menu.menuid)}


@bp.post("/cgi-bin/menu/delconditional")
def delete_conditional_menu():
    """menu/delconditional: {"menuid"}."""
    _, state = authenticated()
    menuid = str(body().get("menuid", ""))
    with current_sandbox().lock:
        menu = next((m for m in state.conditional_menus if str(m.menuid) == menuid), None)
        if menu is None:
            raise ApiError(65301, "invalid menuid")
        state.menu_deletes.take(current_sandbox().now(), MENU_DELETES_PER_DAY)
        state.conditional_menus.remove(menu)
    return ok()


@bp.post("/cgi-bin/menu/trymatch")
def try_match_menu():
    """menu/trymatch: {"user_id": openid} -> {"button": [...]}, the menu that user sees."""
    tenant, state = authenticated()
    openid = str(body().get("user_id", ""))
    with current_sandbox().lock:
        _follower(state, openid)
        buttons = menu_for(tenant, openid)
    if buttons is None:
        raise ApiError(46003, "menu no exist")
    return {"button": buttons}


def menu_for(tenant: Tenant, openid: str, *, platform: str = "") -> list[dict] | None:
    """The buttons `openid` sees (a copy), or None without a menu: the newest conditional
    menu whose rule matches, else the default. A rule with client_platform_type ("1" iOS,
    "2" Android, "3" other) matches only that `platform`. Call under the sandbox lock."""
    state = state_of(tenant)
    if state.menu is None:
        return None
    follower = state.followers.get(openid)
    tags = follower.tagid_list if follower else []
    for menu in reversed(state.conditional_menus):
        if _rule_matches(menu.matchrule, tags, platform):
            return copy.deepcopy(menu.button)
    return copy.deepcopy(state.menu.button)


def _rule_matches(rule: dict[str, str], tags: list[int], platform: str) -> bool:
    if "tag_id" in rule and _as_int(rule["tag_id"]) not in tags:
        return False
    return "client_platform_type" not in rule or rule["client_platform_type"] == platform


def _menu_error(problem: str, level: str) -> ApiError:
    return ApiError(*MENU_ERRORS[problem, level])


def _valid_buttons(buttons) -> list[dict]:
    """The menu's buttons (a copy), or the errcode of the first violation."""
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= MAX_TOP_BUTTONS:
        raise _menu_error("count", TOP)
    for button in buttons:
        _check_button(button, TOP)
        subs = button.get("sub_button") or []
        if not subs:
            _check_action(button, TOP)
            continue
        if not isinstance(subs, list) or len(subs) > MAX_SUB_BUTTONS:
            raise _menu_error("count", SUB)
        for sub in subs:
            _check_button(sub, SUB)
            if sub.get("sub_button"):
                raise _menu_error("level", SUB)
            _check_action(sub, SUB)
    return copy.deepcopy(buttons)


def _check_button(button, level: str) -> None:
    if not isinstance(button, dict):
        raise _data_format_error()
    max_name = MAX_TOP_NAME_BYTES if level == TOP else MAX_SUB_NAME_BYTES
    if not 1 <= _utf8_len(button.get("name") or "") <= max_name:
        raise _menu_error("name", level)


def _check_action(button: dict, level: str) -> None:
    """A leaf button: a known type and the key, url or material that type needs."""
    kind = button.get("type")
    if kind not in BUTTON_TYPES:
        raise _menu_error("type", level)
    if kind in KEY_BUTTON_TYPES and not 1 <= _utf8_len(button.get("key") or "") <= MAX_KEY_BYTES:
        raise _menu_error("key", level)
    if kind in URL_BUTTON_TYPES:
        url = str(button.get("url") or "")
        if not 1 <= _utf8_len(url) <= MAX_URL_BYTES:
            raise _menu_error("url", level)
        if urlsplit(url).scheme not in ("http", "https"):
            raise _menu_error("domain", level)
    material = MATERIAL_FIELDS.get(kind)
    if material and not button.get(material):
        raise ApiError(40007, "invalid media_id")


def _valid_matchrule(rule) -> dict[str, str]:
    if not isinstance(rule, dict):
        raise ApiError(65304, "match rule empty")
    if any(rule.get(name) not in (None, "") for name in REFUSED_MATCHRULE_FIELDS):
        raise ApiError(65320, "matchrule supports only tag_id and client_platform_type")
    matchrule = {k: str(rule[k]) for k in MATCHRULE_FIELDS if rule.get(k) not in (None, "")}
    if not matchrule:
        raise ApiError(65304, "match rule empty")
    return matchrule


def _selfmenu_button(button: dict) -> dict:
    subs = button.get("sub_button") or []
    if not subs:
        return {k: v for k, v in button.items() if k != "sub_button"}
    return {"name": button["name"], "sub_button": {"list": copy.deepcopy(subs)}}


# --- mass sends -------------------------------------------------------------------

MASS_MSGTYPES = frozenset({"mpnews", "text", "voice", "image", "mpvideo", "wxcard"})
MASS_SENDER = "mphelper"  # MASSSENDJOBFINISH comes from the platform's mass-send assistant


@bp.post("/cgi-bin/message/mass/sendall")
def mass_send_all():
    """message/mass/sendall: to every follower or one tag ({"filter": {"is_to_all", "tag_id"}})."""
    tenant, state = authenticated()
    data = body()
    with current_sandbox().lock:
        _count_mass_call(state)
        audience, openids = _audience_by_filter(state, data.get("filter"))
        return _submit_mass_job(tenant, state, data, audience, openids)


@bp.post("/cgi-bin/message/mass/send")
def mass_send():
    """message/mass/send: to 2-10,000 openids ({"touser": [...]}); service accounts only."""
    tenant, state = authenticated()
    if tenant.account_type != SERVICE:
        raise ApiError(48001, "api unauthorized")
    data = body()
    with current_sandbox().lock:
        _count_mass_call(state)
        audience, openids = _audience_by_openids(data.get("touser"))
        return _submit_mass_job(tenant, state, data, audience, openids)


@bp.post("/cgi-bin/message/mass/preview")
def mass_preview():
    """message/mass/preview: one follower ({"touser"}) sees the mass message as it will be
    sent; not counted in their monthly four; 100 a day."""
    _, state = authenticated()
    data = body()
    msgtype, content = _message_content(data, MASS_MSGTYPES)
    with current_sandbox().lock:
        now = current_sandbox().now()
        follower = _follower(state, str(data.get("touser", "")))
        if not follower.subscribe:
            raise ApiError(43004, "require subscribe")
        state.mass_previews.take(now, MASS_PREVIEWS_PER_DAY)
        msg_id = state.new_id()
        follower.received.append(Received(PREVIEW, msg_id, msgtype, content, now))
    return ok(msg_id=msg_id)


def _count_mass_call(state: OAState) -> None:
    now = current_sandbox().now()
    state.mass_calls = [at for at in state.mass_calls if at > now - 60]
    if len(state.mass_calls) >= MASS_CALLS_PER_MINUTE:
        raise ApiError(45009, "reach max api minute quota limit")
    state.mass_calls.append(now)


def _audience_by_filter(state: OAState, mass_filter) -> tuple[dict, list[str]]:
    if not isinstance(mass_filter, dict):
        raise _data_format_error()
    if mass_filter.get("is_to_all"):
        return {"is_to_all": True}, [f.openid for f in state.followers.values() if f.subscribe]
    tag = _tag(state, mass_filter.get("tag_id"))
    return {"tag_id": tag.id}, [
        f.openid for f in state.followers.values() if f.subscribe and tag.id in f.tagid_list
    ]


def _audience_by_openids(touser) -> tuple[dict, list[str]]:
    if not isinstance(touser, list):
        raise _data_format_error()
    if len(touser) < MIN_MASS_OPENIDS:
        raise ApiError(40130, "invalid openid list size, at least two openid")
    if len(touser) > MAX_MASS_OPENIDS:
        raise ApiError(40032, "invalid openid list size")
    openids = list(dict.fromkeys(str(openid) for openid in touser))
    return {"touser": openids}, openids


def _submit_mass_job(
    tenant: Tenant, state: OAState, data: dict, audience: dict, openids: list[str]
) -> Response:
    """Send to `openids` now (minus those filtered out) and report MASSSENDJOBFINISH.
    A clientmsgid seen in the last 24 h answers 45065 with the original msg_id."""
    msgtype, content = _message_content(data, MASS_MSGTYPES)
    media.check_mass_media(tenant, msgtype, content)
    clientmsgid = str(data.get("clientmsgid") or "")
    if _utf8_len(clientmsgid) > MAX_CLIENTMSGID_BYTES:
        raise ApiError(45067, "clientmsgid size out of limit")
    now = current_sandbox().now()
    earlier = _job_with_clientmsgid(state, clientmsgid, now)
    if earlier is not None:
        return jsonify(errcode=45065, errmsg="clientmsgid exist", msg_id=earlier.msg_id)
    if tenant.account_type == SUBSCRIPTION:
        state.mass_sends.take(now, MASS_SENDS_PER_DAY_SUBSCRIPTION, 45028, "has no masssend quota")
    job = MassJob(
        msg_id=state.new_id(),
        msg_data_id=state.new_id(),
        msgtype=msgtype,
        content=content,
        audience=audience,
        clientmsgid=clientmsgid,
        created_at=now,
        total_count=len(openids),
    )
    for openid in openids:
        follower = state.followers.get(openid)
        if follower is not None and _may_receive_mass(tenant, follower, now):
            follower.received.append(Received(MASS, job.msg_id, msgtype, content, now))
            job.recipients.append(openid)
    job.filter_count = job.sent_count = len(job.recipients)
    state.mass_jobs.append(job)
    current_sandbox().deliver(tenant, _mass_finished_xml(tenant, job, now))
    answer = {"errcode": 0, "errmsg": "send job submission success", "msg_id": job.msg_id}
    if msgtype == "mpnews":  # msg_data_id comes only with articles
        answer["msg_data_id"] = job.msg_data_id
    return jsonify(answer)


def _job_with_clientmsgid(state: OAState, clientmsgid: str, now: float) -> MassJob | None:
    if not clientmsgid:
        return None
    for job in reversed(state.mass_jobs):
        if job.created_at <= now - CLIENTMSGID_SECONDS:
            return None
        if job.clientmsgid == clientmsgid:
            return job
    return None


def _may_receive_mass(tenant: Tenant, follower: Follower, now: float) -> bool:
    """Followers receive 4 mass messages a calendar month from a service account."""
    if not follower.subscribe:
        return False
    if tenant.account_type != SERVICE:
        return True
    return follower.mass_messages_in(_month(now)) < MASS_MESSAGES_PER_FOLLOWER_PER_MONTH


def _mass_finished_xml(tenant: Tenant, job: MassJob, now: float) -> str:
    return _event_xml(
        tenant,
        MASS_SENDER,
        "MASSSENDJOBFINISH",
        now,
        MsgID=job.msg_id,
        Status="send success",
        TotalCount=job.total_count,
        FilterCount=job.filter_count,
        SentCount=job.sent_count,
        ErrorCount=job.error_count,
    )


def _message_content(data: dict, msgtypes: frozenset[str]) -> tuple[str, dict]:
    """The msgtype and its content object ({"msgtype": "text", "text": {...}})."""
    msgtype = data.get("msgtype")
    if msgtype not in msgtypes:
        raise ApiError(40008, "invalid message type")
    content = data.get(msgtype)
    if msgtype == "image" and content is None:  # mass image sends may use "images"
        content = data.get("images")
    if not isinstance(content, dict) or not content:
        raise _data_format_error()
    return msgtype, copy.deepcopy(content)


# --- customer-service messages ------------------------------------------------------

CUSTOM_MSGTYPES = frozenset(
    {
        "text",
        "image",
        "voice",
        "video",
        "music",
        "news",
        "mpnews",
        "mpnewsarticle",
        "msgmenu",
        "wxcard",
        "miniprogrampage",
    }
)


@bp.post("/cgi-bin/message/custom/send")
def custom_send():
    """message/custom/send: {"touser", "msgtype", <msgtype>: {...}}, only inside a window
    the follower opened (ServiceWindows): 45015 outside any, 45047 once its quota is used."""
    _, state = authenticated()
    data = body()
    msgtype, content = _message_content(data, CUSTOM_MSGTYPES)
    with current_sandbox().lock:
        now = current_sandbox().now()
        follower = _follower(state, str(data.get("touser", "")))
        _use_window(follower, now)
        follower.received.append(Received(CUSTOM, state.new_id(), msgtype, content, now))
    return ok()


def _open_window(follower: Follower, rule: WindowRule, now: float) -> None:
    """A new action of the same kind reopens the window with a fresh quota."""
    follower.windows[rule.name] = ServiceWindow(now + rule.seconds, rule.quota)


def _use_window(follower: Follower, now: float) -> None:
    """Spend one message of the open window that closes first."""
    open_windows = [w for w in follower.windows.values() if w.expires_at > now]
    if not open_windows:
        raise ApiError(45015, "response out of time limit or subscription is canceled")
    available = [w for w in open_windows if w.used < w.quota]
    if not available:
        raise ApiError(45047, "out of response count limit")
    min(available, key=lambda w: w.expires_at).used += 1


# --- template messages --------------------------------------------------------------


@bp.post("/cgi-bin/template/api_add_template")
def add_template():
    """template/api_add_template: {"template_id_short"} -> template_id; at most 25."""
    tenant, state = authenticated()
    _require_service_account(tenant)
    data = body()
    short_id = str(data.get("template_id_short") or "")
    if not short_id:
        raise _data_format_error()
    with current_sandbox().lock:
        if len(state.templates) >= MAX_TEMPLATES:
            raise ApiError(45026, "template num exceeds limit")
        template = Template(secrets.token_urlsafe(32), short_id, data.get("keyword_name_list", []))
        state.templates[template.template_id] = template
    return ok(template_id=template.template_id)


@bp.get("/cgi-bin/template/get_all_private_template")
def list_templates():
    """template/get_all_private_template: {"template_list": [...]}."""
    _, state = authenticated()
    with current_sandbox().lock:
        templates = [
            {"template_id": t.template_id, "title": t.template_id_short, "content": ""}
            for t in state.templates.values()
        ]
    return {"template_list": templates}


@bp.post("/cgi-bin/template/del_private_template")
def delete_template():
    """template/del_private_template: {"template_id"}."""
    _, state = authenticated()
    template_id = str(body().get("template_id", ""))
    with current_sandbox().lock:
        if state.templates.pop(template_id, None) is None:
            raise ApiError(40037, "invalid template_id")
    return ok()


@bp.post("/cgi-bin/message/template/send")
def template_send():
    """message/template/send: {"touser", "template_id", "data", "url"} -> msgid, then
    TEMPLATESENDJOBFINISH. Service accounts, followers only, 100,000 a day."""
    tenant, state = authenticated()
    _require_service_account(tenant)
    data = body()
    with current_sandbox().lock:
        now = current_sandbox().now()
        template = state.templates.get(str(data.get("template_id", "")))
        if template is None:
            raise ApiError(40037, "invalid template_id")
        follower = _follower(state, str(data.get("touser", "")))
        if not follower.subscribe:
            raise ApiError(43004, "require subscribe")
        state.template_sends.take(now, TEMPLATE_SENDS_PER_DAY)
        msgid = state.new_id()
        content = {k: copy.deepcopy(data.get(k)) for k in ("template_id", "url", "data")}
        follower.received.append(Received(TEMPLATE, msgid, "template", content, now))
        finished = _event_xml(
            tenant, follower.openid, "TEMPLATESENDJOBFINISH", now, MsgID=msgid, Status="success"
        )
        current_sandbox().deliver(tenant, finished)
    return ok(msgid=msgid)


def _require_service_account(tenant: Tenant) -> None:
    if tenant.account_type != SERVICE:
        raise ApiError(48001, "api unauthorized")


# --- parametric QR codes ------------------------------------------------------------

TEMPORARY_QR = frozenset({"QR_SCENE", "QR_STR_SCENE"})
PERMANENT_QR = frozenset({"QR_LIMIT_SCENE", "QR_LIMIT_STR_SCENE"})
STRING_SCENE_QR = frozenset({"QR_STR_SCENE", "QR_LIMIT_STR_SCENE"})


@bp.post("/cgi-bin/qrcode/create")
def create_qrcode():
    """qrcode/create: {"action_name", "action_info": {"scene": {...}}, "expire_seconds"}
    -> {"ticket", "expire_seconds" (temporary only), "url"}. The same permanent scene
    gives the same ticket."""
    _, state = authenticated()
    data = body()
    action = data.get("action_name")
    if action not in TEMPORARY_QR | PERMANENT_QR:
        raise ApiError(40053, "invalid action info")
    scene_id, scene_str = _scene(action, (data.get("action_info") or {}).get("scene") or {})
    with current_sandbox().lock:
        if action in PERMANENT_QR:
            code = _permanent_qrcode(state, action, scene_id, scene_str)
            return {"ticket": code.ticket, "url": code.url}
        seconds = _as_int(data.get("expire_seconds"))
        if seconds is None or seconds <= 0:
            seconds = QR_DEFAULT_EXPIRE_SECONDS
        seconds = min(seconds, QR_MAX_EXPIRE_SECONDS)
        code = _new_qrcode(state, action, scene_id, scene_str)
        code.expires_at = current_sandbox().now() + seconds
    return {"ticket": code.ticket, "expire_seconds": seconds, "url": code.url}


def _scene(action: str, scene: dict) -> tuple[int, str]:
    if action in STRING_SCENE_QR:
        scene_str = str(scene.get("scene_str") or "")
        if not 1 <= len(scene_str) <= MAX_SCENE_STR_CHARS:
            raise ApiError(40053, "invalid action info")
        return 0, scene_str
    max_id = MAX_PERMANENT_SCENE_ID if action in PERMANENT_QR else MAX_TEMPORARY_SCENE_ID
    scene_id = _as_int(scene.get("scene_id"))
    if scene_id is None or not 1 <= scene_id <= max_id:
        raise ApiError(40053, "invalid action info")
    return scene_id, ""


def _permanent_qrcode(state: OAState, action: str, scene_id: int, scene_str: str) -> QrCode:
    permanent = [c for c in state.qrcodes.values() if c.expires_at is None]
    for code in permanent:
        if (code.action_name, code.scene_id, code.scene_str) == (action, scene_id, scene_str):
            return code
    if len(permanent) >= MAX_PERMANENT_QRCODES:
        raise ApiError(40053, "invalid action info")  # the account has used its 100,000
    return _new_qrcode(state, action, scene_id, scene_str)


def _new_qrcode(state: OAState, action: str, scene_id: int, scene_str: str) -> QrCode:
    url = f"http://weixin.qq.com/q/{secrets.token_urlsafe(16)}"
    code = QrCode("gQ" + secrets.token_urlsafe(30), action, scene_id, scene_str, url)
    state.qrcodes[code.ticket] = code
    return code


# --- OAuth for H5 pages (snsapi_base) -----------------------------------------------


@open_bp.get("/connect/oauth2/authorize")
def oauth_authorize():
    """connect/oauth2/authorize: redirects (302) to redirect_uri?code=CODE&state=S.
    Sandbox only: `openid` says who is reading, which WeChat knows and we must be told.
    The sandbox grants snsapi_base only. A reader who does not follow the OA is a user of
    it from now on, as on WeChat: user/info answers `subscribe: 0` for them. A corp id as
    appid is WeCom's member sign-in (wecom_client.py)."""
    args = request.args
    tenant = current_sandbox().tenant(args.get("appid", ""))
    if tenant.kind == WECOM:
        return wecom_client.member_authorize(tenant)
    if not args.get("redirect_uri"):
        raise ApiError(10011, "redirect_uri is empty")
    if args.get("scope") != "snsapi_base":
        raise ApiError(10005, "scope unauthorized")
    if not args.get("openid"):
        raise ApiError(41009, "missing openid")
    with current_sandbox().lock:
        now = current_sandbox().now()
        codes = state_of(tenant).oauth_codes
        for stale in [c for c in codes.values() if c.issued_at <= now - OAUTH_CODE_SECONDS]:
            del codes[stale.code]
        grant = OAuthCode(secrets.token_urlsafe(24), args["openid"], "snsapi_base", now)
        codes[grant.code] = grant
        followers = state_of(tenant).followers
        followers.setdefault(grant.openid, Follower(grant.openid, subscribe=0))
    return redirect(_with_query(args["redirect_uri"], code=grant.code, state=args.get("state", "")))


@bp.get("/sns/oauth2/access_token")
def oauth_access_token():
    """sns/oauth2/access_token: a code (single use, 5 minutes) -> the reader's openid."""
    args = request.args
    tenant = current_sandbox().tenant(args.get("appid", ""))
    if args.get("secret") != tenant.secrets.get("app"):
        raise ApiError(40125, "invalid appsecret")
    if args.get("grant_type") != "authorization_code":
        raise ApiError(40002, "invalid grant_type")
    with current_sandbox().lock:
        now = current_sandbox().now()
        grant = state_of(tenant).oauth_codes.get(args.get("code", ""))
        if grant is not None and grant.used:
            raise ApiError(40163, "code been used")
        if grant is None or grant.issued_at <= now - OAUTH_CODE_SECONDS:
            raise ApiError(40029, "invalid code")
        grant.used = True
    return {
        "access_token": secrets.token_urlsafe(32),
        "expires_in": OAUTH_TOKEN_SECONDS,
        "refresh_token": secrets.token_urlsafe(32),
        "openid": grant.openid,
        "scope": grant.scope,
    }


def _with_query(url: str, **params: str) -> str:
    """`url` with `params` added to its query, before any #fragment, as WeChat does."""
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return urlunsplit(parts._replace(query=query))


# --- follower actions: what the follower simulator and tests make people do ----------
#
# Each changes the sandbox's state and delivers the callback WeChat would send,
# which it returns. ValueError means the person could not do that (e.g. tap a
# menu of an OA they do not follow).


def follow(
    sandbox: Sandbox, tenant: Tenant, openid: str, *, unionid: str = "", ticket: str | None = None
) -> str:
    """Follow the OA: from search, or by scanning a parametric QR code (`ticket`, which
    fills qr_scene/qr_scene_str and adds EventKey qrscene_<scene> + Ticket). Opens the
    short customer-service window."""
    with sandbox.lock:
        now = sandbox.now()
        state = state_of(tenant)
        known = state.followers.get(openid)
        if known is not None and known.subscribe:
            raise ValueError(f"{openid} already follows {tenant.app_id}; use scan()")
        follower = known or Follower(openid)  # a returning follower keeps their tags
        code = _scanned_code(state, ticket, now) if ticket else None
        follower.subscribe, follower.subscribe_time = 1, int(now)
        follower.unionid = unionid or follower.unionid
        follower.subscribe_scene = "ADD_SCENE_QR_CODE" if code else "ADD_SCENE_SEARCH"
        follower.qr_scene = code.scene_id if code else 0
        follower.qr_scene_str = code.scene_str if code else ""
        state.followers[openid] = follower
        _open_window(follower, ServiceWindows.AFTER_EVENT, now)
        from_qr = {"EventKey": f"qrscene_{code.scene}", "Ticket": code.ticket} if code else {}
        return _deliver(sandbox, tenant, _event_xml(tenant, openid, "subscribe", now, **from_qr))


def unfollow(sandbox: Sandbox, tenant: Tenant, openid: str) -> str:
    """Unfollow: unsubscribe; closes every customer-service window."""
    with sandbox.lock:
        now = sandbox.now()
        follower = _following(tenant, openid)
        follower.subscribe = 0
        follower.windows.clear()
        return _deliver(sandbox, tenant, _event_xml(tenant, openid, "unsubscribe", now))


def scan(sandbox: Sandbox, tenant: Tenant, openid: str, ticket: str) -> str:
    """A follower scans a parametric QR code: SCAN with the raw scene. Opens the short
    window. (Someone not following yet follows instead: follow(..., ticket=...).)"""
    with sandbox.lock:
        now = sandbox.now()
        follower = _following(tenant, openid)
        code = _scanned_code(state_of(tenant), ticket, now)
        _open_window(follower, ServiceWindows.AFTER_EVENT, now)
        xml = _event_xml(tenant, openid, "SCAN", now, EventKey=code.scene, Ticket=code.ticket)
        return _deliver(sandbox, tenant, xml)


def click(sandbox: Sandbox, tenant: Tenant, openid: str, key: str) -> str:
    """A follower taps a click button: CLICK with its key. Opens the short window."""
    with sandbox.lock:
        now = sandbox.now()
        _open_window(_following(tenant, openid), ServiceWindows.AFTER_EVENT, now)
        return _deliver(sandbox, tenant, _event_xml(tenant, openid, "CLICK", now, EventKey=key))


def view(sandbox: Sandbox, tenant: Tenant, openid: str, url: str) -> str:
    """A follower taps a view button: VIEW with its URL (opens no window)."""
    with sandbox.lock:
        now = sandbox.now()
        _following(tenant, openid)
        return _deliver(sandbox, tenant, _event_xml(tenant, openid, "VIEW", now, EventKey=url))


def send_text(sandbox: Sandbox, tenant: Tenant, openid: str, content: str) -> str:
    """A follower writes to the OA: a text message with a MsgId. Opens the 48-hour window."""
    with sandbox.lock:
        now = sandbox.now()
        follower = _following(tenant, openid)
        _open_window(follower, ServiceWindows.AFTER_MESSAGE, now)
        msg_id = state_of(tenant).new_id()
        xml = simulate.oa_text(openid, content, msg_id, to=original_id(tenant), at=int(now))
        return _deliver(sandbox, tenant, xml)


def share_location(
    sandbox: Sandbox,
    tenant: Tenant,
    openid: str,
    latitude: float,
    longitude: float,
    precision: float = 30.0,
) -> str:
    """A follower's client reports where they are: LOCATION (opens no window)."""
    with sandbox.lock:
        now = sandbox.now()
        _following(tenant, openid)
        xml = _event_xml(
            tenant,
            openid,
            "LOCATION",
            now,
            Latitude=latitude,
            Longitude=longitude,
            Precision=precision,
        )
        return _deliver(sandbox, tenant, xml)


def passive_reply(sandbox: Sandbox, tenant: Tenant, xml: str) -> str | None:
    """What the follower saw in their chat in answer to the callback `xml` (the app's
    passive text reply, decrypted as WeChat does): "" when the app answered with no reply
    (or something the sandbox cannot read), None while the callback is unanswered."""
    with sandbox.lock:
        delivery = next((d for d in reversed(sandbox.deliveries) if d.xml == xml), None)
        if delivery is None:
            return ""
        if not delivery.done:
            return None
        answer = delivery.answer.strip() if delivery.accepted else ""
    if not answer.startswith("<xml>"):
        return ""
    try:
        fields = parse_xml(answer)
        if fields.get("Encrypt"):
            crypto = WeChatCrypto(tenant.token, tenant.aes_key, tenant.app_id)
            plain = crypto.decrypt_message(
                answer, fields.get("MsgSignature"), fields.get("TimeStamp"), fields.get("Nonce")
            )
            fields = parse_xml(plain)
    except (CallbackRejected, InvalidAppIdException, InvalidSignatureException, ValueError):
        return ""  # a reply WeChat could not read either: the follower sees nothing
    return (fields.get("Content") or "") if fields.get("MsgType") == "text" else ""


def received_texts(sandbox: Sandbox, tenant: Tenant, openid: str) -> list[str]:
    """The texts of the messages the OA sent a follower (mass, custom, template, preview),
    oldest first, as their chat shows them."""
    with sandbox.lock:
        follower = state_of(tenant).followers.get(openid)
        contents = [r.content for r in follower.received] if follower else []
    return [text for content in contents for text in _texts(content)]


def _texts(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _texts(item)]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    return []


def _following(tenant: Tenant, openid: str) -> Follower:
    follower = state_of(tenant).followers.get(openid)
    if follower is None or not follower.subscribe:
        raise ValueError(f"{openid} does not follow {tenant.app_id}")
    return follower


def _scanned_code(state: OAState, ticket: str, now: float) -> QrCode:
    code = state.qrcodes.get(ticket)
    if code is None or not code.valid_at(now):
        raise ValueError(f"no valid QR code with ticket {ticket!r}")
    return code


def _event_xml(tenant: Tenant, sender: str, event: str, now: float, **fields) -> str:
    return simulate.oa_event(sender, event, to=original_id(tenant), at=int(now), **fields)


def _deliver(sandbox: Sandbox, tenant: Tenant, xml: str) -> str:
    sandbox.deliver(tenant, xml)
    return xml
