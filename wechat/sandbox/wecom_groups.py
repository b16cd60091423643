"""WeCom customer groups (客户群), served under /wecom beside wecom.py's APIs.

`externalcontact/groupchat/list` (status filter, owner filter, cursor, limit up to 1000)
and `externalcontact/groupchat/get` (name, owner, notice, members with type 1 member /
2 external, userid, unionid, join_time, join_scene, invitor), with WECHAT.md's limit of
500 people in a group. People make groups in the WeCom client: here anyone plays that over
HTTP, `POST /sandbox/wecom/<corp_id>/groups` (create) and
`POST /sandbox/wecom/<corp_id>/groups/<chat_id>/members` (join).

Errcodes: 40050 unknown chat_id (WeCom's "chatid不存在"), 40058 a limit out of range,
40003 an unknown member or customer, 90500 the group
is full (uncertain: WeCom refuses the join in the client; 90500 is the chat-full errcode
of its group APIs).
"""

from dataclasses import asdict, dataclass, field

from flask import Blueprint, jsonify

from wechat import simulate
from wechat.sandbox import wecom
from wechat.sandbox.core import WECOM, ApiError, Sandbox, Tenant, body, ok, sandbox

bp = Blueprint("sandbox_wecom_groups", __name__)

GROUP_MEMBERS_MAX = 500
LIST_LIMIT_MAX = 1000
MEMBER, EXTERNAL = 1, 2
JOINED_DIRECTLY, JOINED_BY_LINK, JOINED_BY_QR = 1, 2, 3
NORMAL = 0  # a group's status in groupchat/list (1-3: the owner left and a transfer runs)


@dataclass
class GroupMember:
    userid: str
    type: int
    join_time: int
    join_scene: int
    invitor: str
    unionid: str = ""
    state: str = ""  # the 群活码's state the customer joined through (groupchat/get shows it)


@dataclass
class CustomerGroup:
    chat_id: str
    name: str
    owner: str
    create_time: int
    notice: str = ""
    status: int = NORMAL
    members: list[GroupMember] = field(default_factory=list)


def groups_of(tenant: Tenant) -> dict[str, CustomerGroup]:
    return tenant.data.setdefault(f"{WECOM}_groups", {})


def inspect(tenant: Tenant) -> dict:
    return {"customer_groups": {k: asdict(g) for k, g in groups_of(tenant).items()}}


def _group_json(group: CustomerGroup) -> dict:
    return {
        "chat_id": group.chat_id,
        "name": group.name,
        "owner": group.owner,
        "create_time": group.create_time,
        "notice": group.notice,
        "member_list": [
            {
                "userid": m.userid,
                "type": m.type,
                "join_time": m.join_time,
                "join_scene": m.join_scene,
                "invitor": {"userid": m.invitor},
                **({"unionid": m.unionid} if m.unionid else {}),
                **({"state": m.state} if m.state else {}),
            }
            for m in group.members
        ],
        "admin_list": [],
    }


@bp.post("/wecom/cgi-bin/externalcontact/groupchat/list")
def groupchat_list():
    tenant, _state = wecom.contact_api()
    data = body()
    limit = data.get("limit")
    if not isinstance(limit, int) or not 1 <= limit <= LIST_LIMIT_MAX:
        raise ApiError(40058, f"limit must be 1..{LIST_LIMIT_MAX}")
    status = data.get("status_filter", 0)
    owners = (data.get("owner_filter") or {}).get("userid_list") or []
    with sandbox().lock:
        groups = sorted(groups_of(tenant).values(), key=lambda g: (g.create_time, g.chat_id))
        chosen = [g for g in groups if g.status == status and (not owners or g.owner in owners)]
        page, cursor = wecom._page(chosen, data.get("cursor") or "", limit)
    return ok(
        group_chat_list=[{"chat_id": g.chat_id, "status": g.status} for g in page],
        next_cursor=cursor,
    )


@bp.post("/wecom/cgi-bin/externalcontact/groupchat/get")
def groupchat_get():
    tenant, _state = wecom.contact_api()
    data = body()
    with sandbox().lock:
        group = groups_of(tenant).get(str(data.get("chat_id") or ""))
        if group is None:
            raise ApiError(40050, "chatid not found")
        return ok(group_chat=_group_json(group))


# ---- what people do in the WeCom client, drivable over HTTP ----------------------------------


def create_group(
    state: Sandbox, tenant: Tenant, *, owner: str, name: str, notice: str = "", chat_id: str = ""
) -> CustomerGroup:
    """A staff member makes a group (with `chat_id`, a demo's fixed one; else a new one)."""
    if owner not in wecom.state_of(tenant).staff:
        raise ApiError(40003, f"invalid userid: {owner}")
    now = int(state.now())
    group = CustomerGroup(chat_id or wecom._new_id("wr", 20), name[:100], owner, now, notice)
    group.members.append(GroupMember(owner, MEMBER, now, JOINED_DIRECTLY, ""))
    groups_of(tenant)[group.chat_id] = group
    return group


def join_group(
    state: Sandbox,
    tenant: Tenant,
    chat_id: str,
    userid: str,
    *,
    invitor: str = "",
    scene: int = JOINED_DIRECTLY,
    unionid: str = "",
    join_state: str = "",
) -> GroupMember:
    """A member (a staff userid) or a customer (an external_userid) joins."""
    corp = wecom.state_of(tenant)
    group = groups_of(tenant).get(chat_id)
    if group is None:
        raise ApiError(40050, "chatid not found")
    if any(m.userid == userid for m in group.members):
        return next(m for m in group.members if m.userid == userid)
    if len(group.members) >= GROUP_MEMBERS_MAX:
        raise ApiError(90500, f"a group holds at most {GROUP_MEMBERS_MAX} people")
    if userid in corp.staff:
        kind = MEMBER
    elif userid in corp.external_contacts:
        kind, unionid = EXTERNAL, unionid or (corp.external_contacts[userid].unionid or "")
    elif userid.startswith("wm") or userid.startswith("wo"):
        kind = EXTERNAL  # a customer nobody of the corp has added yet
    else:
        raise ApiError(40003, f"invalid userid: {userid}")
    member = GroupMember(
        userid, kind, int(state.now()), scene, invitor or group.owner, unionid, join_state
    )
    group.members.append(member)
    return member


def member_joins(
    state: Sandbox,
    tenant: Tenant,
    chat_id: str,
    userid: str,
    *,
    invitor: str = "",
    scene: int = JOINED_DIRECTLY,
    join_state: str = "",
) -> GroupMember:
    """Someone joins a group in the WeCom client: they are added and WeCom's
    change_external_chat (update, add_member) goes to the corp's callback URL. The event
    carries no state: groupchat/get shows it on the member."""
    member = join_group(
        state, tenant, chat_id, userid, invitor=invitor, scene=scene, join_state=join_state
    )
    xml = simulate.xml_document(
        {
            "ToUserName": tenant.app_id,
            "FromUserName": "sys",
            "CreateTime": member.join_time,
            "MsgType": "event",
            "Event": "change_external_chat",
            "ChatId": chat_id,
            "ChangeType": "update",
            "UpdateDetail": "add_member",
            "JoinScene": scene,
            "MemChangeCnt": 1,
        }
    )
    state.deliver(tenant, xml)
    return member


@bp.post("/sandbox/wecom/<corp_id>/groups")
def http_create_group(corp_id: str):
    data = body()
    with sandbox().lock:
        tenant = sandbox().tenant(corp_id)
        group = create_group(
            sandbox(),
            tenant,
            owner=str(data.get("owner") or ""),
            name=str(data.get("name") or ""),
            notice=str(data.get("notice") or ""),
        )
        for userid in data.get("members") or []:
            join_group(sandbox(), tenant, group.chat_id, str(userid))
        return jsonify(_group_json(group))


@bp.post("/sandbox/wecom/<corp_id>/groups/<chat_id>/members")
def http_join_group(corp_id: str, chat_id: str):
    data = body()
    with sandbox().lock:
        tenant = sandbox().tenant(corp_id)
        for userid in data.get("userids") or []:
            join_group(
                sandbox(),
                tenant,
                chat_id,
                str(userid),
                invitor=str(data.get("invitor") or ""),
                scene=int(data.get("join_scene") or JOINED_DIRECTLY),
            )
        return jsonify(_group_json(groups_of(tenant)[chat_id]))
