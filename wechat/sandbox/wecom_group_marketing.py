"""Filling and greeting customer groups: 群活码 and group welcome templates, under /wecom.

- `externalcontact/groupchat/add_join_way` (scene 1 mini-program button / 2 QR code, remark
  cut to 30 characters, auto_create_room (default 1) with room_base_name up to 40
  characters and room_base_id, chat_id_list of 1 to 5 groups, state up to 30 characters),
  `get_join_way` (join_way with qr_code for scene 2), `update_join_way` (the same fields,
  all given again, as WeCom documents), `del_join_way`. 联系我 and 加入群聊 configurations
  share one quota of 500,000 per corp (wecom.CONFIG_QUOTA).
- `externalcontact/group_welcome_template/add|edit|get|del`: text up to 3000 bytes with
  %NICKNAME% placeholders, and one image, link, miniprogram, file or video; at most 100
  templates a corp. WeCom gives the owner a template to pick for a group: no API puts one
  on a group.
- The QR code's picture: `GET /sandbox/wecom/<corp_id>/join-ways/<config_id>/qr.svg`.
- A customer scanning a join way's QR code, drivable over HTTP:
  `POST /sandbox/wecom/<corp_id>/join-ways/<config_id>/scan` {"external_userid"}. They
  join the first listed group with room; a group stops admitting by QR code at 200 people
  (WECHAT.md). When every group is full and auto_create_room is on, WeCom opens a new room
  "<room_base_name><room_base_id + n>" owned by the first group's owner and lists it (a
  list already at 5 drops its first full group for it); otherwise the scan is refused.

Errcodes: 40058 a field out of range (WeCom's "不合法的参数"); 40050 an unknown or dismissed
chat_id; 41044 an unknown config_id (as for 联系我); 41059 empty welcome content (uncertain:
WeCom's "content为空"-style code); 41060 unknown template_id (uncertain); 90500 the groups are
full and no room may be opened (the chat-full code of the group APIs); 41054 over the shared
quota or 100 welcome templates (uncertain: WeCom documents the limits, not their errcodes).
"""

import io
import secrets
from dataclasses import asdict, dataclass, field

import segno
from flask import Blueprint, Response, jsonify, request

from wechat.sandbox import wecom, wecom_groups
from wechat.sandbox.core import WECOM, ApiError, Sandbox, Tenant, body, ok, sandbox

bp = Blueprint("sandbox_wecom_group_marketing", __name__)

MINI_PROGRAM, QR_CODE = 1, 2  # add_join_way scenes
JOIN_WAY_CHATS_MAX = 5
JOIN_WAY_REMARK_MAX_CHARS = 30
JOIN_WAY_STATE_MAX_CHARS = 30
ROOM_BASE_NAME_MAX_CHARS = 40
QR_CODE_MEMBERS_MAX = 200  # a group stops admitting by scan here (500 by invitation)
WELCOME_TEXT_MAX_BYTES = 3000
WELCOME_TEMPLATES_MAX = 100
WELCOME_ATTACHMENT_KINDS = ("image", "link", "miniprogram", "file", "video")
QUOTA_REACHED = 41054


@dataclass
class JoinWay:
    config_id: str
    scene: int
    chat_id_list: list[str]
    remark: str = ""
    auto_create_room: int = 1
    room_base_name: str = ""
    room_base_id: int = 0
    state: str = ""
    qr_code: str = ""
    rooms_created: int = 0


@dataclass
class WelcomeTemplate:
    template_id: str
    content: dict = field(default_factory=dict)  # text and the one attachment, as given


def join_ways_of(tenant: Tenant) -> dict[str, JoinWay]:
    return tenant.data.setdefault(f"{WECOM}_join_ways", {})


def welcome_templates_of(tenant: Tenant) -> dict[str, WelcomeTemplate]:
    return tenant.data.setdefault(f"{WECOM}_group_welcome_templates", {})


def inspect(tenant: Tenant) -> dict:
    return {
        "join_ways": {k: asdict(w) for k, w in join_ways_of(tenant).items()},
        "group_welcome_templates": {k: asdict(t) for k, t in welcome_templates_of(tenant).items()},
    }


# ---- 群活码 -----------------------------------------------------------------------------


def _join_way_fields(tenant: Tenant, data: dict) -> dict:
    """add/update_join_way's fields checked as WeCom checks them."""
    scene = data.get("scene")
    if scene not in (MINI_PROGRAM, QR_CODE):
        raise ApiError(40058, "scene must be 1 or 2")
    chat_ids = data.get("chat_id_list")
    if not isinstance(chat_ids, list) or not 1 <= len(chat_ids) <= JOIN_WAY_CHATS_MAX:
        raise ApiError(40058, f"chat_id_list takes 1 to {JOIN_WAY_CHATS_MAX} chat_ids")
    groups = wecom_groups.groups_of(tenant)
    for chat_id in chat_ids:
        group = groups.get(str(chat_id))
        if group is None or group.status != wecom_groups.NORMAL:
            raise ApiError(40050, f"chatid not found: {chat_id}")
    state = data.get("state") or ""
    if not isinstance(state, str) or len(state) > JOIN_WAY_STATE_MAX_CHARS:
        raise ApiError(40058, f"state longer than {JOIN_WAY_STATE_MAX_CHARS} characters")
    auto_create_room = data.get("auto_create_room", 1)
    if auto_create_room not in (0, 1):
        raise ApiError(40058, "auto_create_room must be 0 or 1")
    room_base_name = data.get("room_base_name") or ""
    if len(room_base_name) > ROOM_BASE_NAME_MAX_CHARS:
        raise ApiError(40058, f"room_base_name longer than {ROOM_BASE_NAME_MAX_CHARS}")
    room_base_id = data.get("room_base_id") or 0
    if not isinstance(room_base_id, int) or room_base_id < 0:
        raise ApiError(40058, "room_base_id must be a whole number")
    return {
        "scene": scene,
        "chat_id_list": [str(c) for c in chat_ids],
        "remark": str(data.get("remark") or "")[:JOIN_WAY_REMARK_MAX_CHARS],  # WeCom cuts it
        "auto_create_room": auto_create_room,
        "room_base_name": room_base_name,
        "room_base_id": room_base_id,
        "state": state,
    }


def _join_way(tenant: Tenant, data: dict) -> JoinWay:
    way = join_ways_of(tenant).get(str(data.get("config_id") or ""))
    if way is None:
        raise ApiError(41044, "invalid config_id")
    return way


def _join_way_json(way: JoinWay) -> dict:
    shown = asdict(way)
    del shown["rooms_created"]
    if not way.qr_code:
        del shown["qr_code"]
    return shown


@bp.post("/wecom/cgi-bin/externalcontact/groupchat/add_join_way")
def add_join_way():
    tenant, _state = wecom.contact_api()
    data = body()
    with sandbox().lock:
        values = _join_way_fields(tenant, data)
        if wecom.configs_in_use(tenant) >= wecom.CONFIG_QUOTA:
            raise ApiError(QUOTA_REACHED, f"at most {wecom.CONFIG_QUOTA} configurations")
        config_id = secrets.token_hex(16)
        # WeCom links a picture on its image host; the sandbox draws one itself.
        qr_code = f"{request.host_url}sandbox/wecom/{tenant.app_id}/join-ways/{config_id}/qr.svg"
        way = JoinWay(config_id, qr_code=qr_code if values["scene"] == QR_CODE else "", **values)
        join_ways_of(tenant)[config_id] = way
        return ok(config_id=config_id)


@bp.post("/wecom/cgi-bin/externalcontact/groupchat/get_join_way")
def get_join_way():
    tenant, _state = wecom.contact_api()
    data = body()
    with sandbox().lock:
        return ok(join_way=_join_way_json(_join_way(tenant, data)))


@bp.post("/wecom/cgi-bin/externalcontact/groupchat/update_join_way")
def update_join_way():
    tenant, _state = wecom.contact_api()
    data = body()
    with sandbox().lock:
        way = _join_way(tenant, data)
        values = _join_way_fields(tenant, data)
        if values["scene"] != way.scene:
            raise ApiError(40058, "a join way's scene cannot change")
        for name, value in values.items():
            setattr(way, name, value)
        return ok()


@bp.post("/wecom/cgi-bin/externalcontact/groupchat/del_join_way")
def del_join_way():
    tenant, _state = wecom.contact_api()
    data = body()
    with sandbox().lock:
        del join_ways_of(tenant)[_join_way(tenant, data).config_id]
        return ok()


def _room_for_scan(state: Sandbox, tenant: Tenant, way: JoinWay) -> str:
    """The chat_id a scan admits into: the first listed group under 200 people, else a new
    room when the way may open one. 90500 when it may not."""
    groups = wecom_groups.groups_of(tenant)
    listed = [groups[c] for c in way.chat_id_list if c in groups]
    for group in listed:
        if group.status == wecom_groups.NORMAL and len(group.members) < QR_CODE_MEMBERS_MAX:
            return group.chat_id
    if not way.auto_create_room or not listed:
        raise ApiError(90500, "every group of this code is full (200 people by QR code)")
    number = way.room_base_id + way.rooms_created
    room = wecom_groups.create_group(
        state, tenant, owner=listed[0].owner, name=f"{way.room_base_name}{number}"
    )
    way.rooms_created += 1
    if len(way.chat_id_list) >= JOIN_WAY_CHATS_MAX:
        way.chat_id_list.remove(listed[0].chat_id)  # full: it admits nobody by scan anyway
    way.chat_id_list.append(room.chat_id)
    return room.chat_id


def scan_join_way(
    state: Sandbox, tenant: Tenant, config_id: str, external_userid: str
) -> tuple[str, wecom_groups.GroupMember]:
    """A customer scans a 群活码 in WeChat: they join a group (join_scene 3, the way's state)
    and WeCom tells the corp (change_external_chat). Someone already in one of its groups
    stays where they are. Returns the group's chat_id and the member."""
    with state.lock:
        way = join_ways_of(tenant).get(config_id)
        if way is None:
            raise ApiError(41044, "invalid config_id")
        groups = wecom_groups.groups_of(tenant)
        for chat_id in way.chat_id_list:
            for member in groups[chat_id].members if chat_id in groups else []:
                if member.userid == external_userid:
                    return chat_id, member
        chat_id = _room_for_scan(state, tenant, way)
        return chat_id, wecom_groups.join_group(
            state,
            tenant,
            chat_id,
            external_userid,
            scene=wecom_groups.JOINED_BY_QR,
            member_state=way.state,
        )


@bp.post("/sandbox/wecom/<corp_id>/join-ways/<config_id>/scan")
def http_scan_join_way(corp_id: str, config_id: str):
    data = body()
    external_userid = str(data.get("external_userid") or "")
    if not external_userid:
        raise ApiError(40058, "external_userid required")
    tenant = sandbox().tenant(corp_id)
    chat_id, member = scan_join_way(sandbox(), tenant, config_id, external_userid)
    return jsonify({"chat_id": chat_id, **asdict(member)})


@bp.get("/sandbox/wecom/<corp_id>/join-ways/<config_id>/qr.svg")
def http_join_way_qr_code(corp_id: str, config_id: str):
    """The QR code's picture; its content is the scan endpoint above."""
    with sandbox().lock:
        if config_id not in join_ways_of(sandbox().tenant(corp_id)):
            raise ApiError(41044, "invalid config_id")
    image = io.BytesIO()
    scan = f"{request.host_url}sandbox/wecom/{corp_id}/join-ways/{config_id}/scan"
    segno.make(scan, error="m").save(image, kind="svg", scale=6, border=2)
    return Response(image.getvalue(), mimetype="image/svg+xml")


# ---- group welcome templates --------------------------------------------------------------


def _welcome_content(data: dict) -> dict:
    text = (data.get("text") or {}).get("content") or ""
    if len(text.encode()) > WELCOME_TEXT_MAX_BYTES:
        raise ApiError(40058, f"text longer than {WELCOME_TEXT_MAX_BYTES} bytes")
    attachments = {k: data[k] for k in WELCOME_ATTACHMENT_KINDS if data.get(k)}
    if not text and not attachments:
        raise ApiError(41059, "text, image, link, miniprogram, file and video are all empty")
    link = attachments.get("link")
    if link is not None and not (link.get("title") and link.get("url")):
        raise ApiError(40058, "link needs title and url")
    if link is not None and len(str(link["title"]).encode()) > 128:
        raise ApiError(40058, "link title longer than 128 bytes")
    if link is not None and len(str(link.get("desc") or "").encode()) > 512:
        raise ApiError(40058, "link desc longer than 512 bytes")
    return {**({"text": {"content": text}} if text else {}), **attachments}


def _welcome_template(tenant: Tenant, data: dict) -> WelcomeTemplate:
    template = welcome_templates_of(tenant).get(str(data.get("template_id") or ""))
    if template is None:
        raise ApiError(41060, "invalid template_id")
    return template


@bp.post("/wecom/cgi-bin/externalcontact/group_welcome_template/add")
def group_welcome_template_add():
    tenant, _state = wecom.contact_api()
    data = body()
    content = _welcome_content(data)
    with sandbox().lock:
        templates = welcome_templates_of(tenant)
        if len(templates) >= WELCOME_TEMPLATES_MAX:
            raise ApiError(QUOTA_REACHED, f"at most {WELCOME_TEMPLATES_MAX} welcome templates")
        template = WelcomeTemplate(wecom._new_id("msg"), content)
        templates[template.template_id] = template
        return ok(template_id=template.template_id)


@bp.post("/wecom/cgi-bin/externalcontact/group_welcome_template/edit")
def group_welcome_template_edit():
    tenant, _state = wecom.contact_api()
    data = body()
    content = _welcome_content(data)
    with sandbox().lock:
        _welcome_template(tenant, data).content = content
        return ok()


@bp.post("/wecom/cgi-bin/externalcontact/group_welcome_template/get")
def group_welcome_template_get():
    tenant, _state = wecom.contact_api()
    data = body()
    with sandbox().lock:
        return ok(**_welcome_template(tenant, data).content)


@bp.post("/wecom/cgi-bin/externalcontact/group_welcome_template/del")
def group_welcome_template_del():
    tenant, _state = wecom.contact_api()
    data = body()
    with sandbox().lock:
        del welcome_templates_of(tenant)[_welcome_template(tenant, data).template_id]
        return ok()
