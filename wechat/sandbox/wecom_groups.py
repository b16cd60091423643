"""WeCom customer groups (客户群), served under /wecom beside wecom.py's APIs.

`externalcontact/groupchat/list` (status filter, owner filter, cursor, limit up to 1000)
and `externalcontact/groupchat/get` (name, owner, notice, members with type 1 member /
2 external, userid, unionid, join_time, join_scene, invitor), with WECHAT.md's limit of
500 people in a group. People make groups in the WeCom client: here anyone plays that over
HTTP, `POST /sandbox/wecom/<corp_id>/groups` (create) and
`POST /sandbox/wecom/<corp_id>/groups/<chat_id>/members` (join),
`.../members/leave` (leave, or be removed), `.../owner` (hand the group over),
`POST /sandbox/wecom/<corp_id>/groups/<chat_id>` (rename, change the notice) and
`.../dismiss`. Each delivers `change_external_chat` as WeCom does: `create`, `update` with
UpdateDetail `add_member` (JoinScene 0 invited or by link, 3 by QR code; MemChangeCnt),
`del_member` (QuitScene 0 left, 1 removed), `change_owner`, `change_name`,
`change_notice`, and `dismiss`.

groupchat/list's status_filter: 0 every group (no filter), 1-3 the owner left and the
group waits for, is under, or has finished its transfer.

Groups move with customer transfers: `groupchat/onjob_transfer` (an owner in service) and
`groupchat/transfer` (a departed owner, `POST /sandbox/wecom/staff/depart`), both
{chat_id_list (1-100), new_owner} -> failed_chat_list [{chat_id, errcode, errmsg}]; the
chats not listed now belong to new_owner (who joins if not in them; API changes deliver no
callback). Per chat: 40050 unknown, 40130 already the new owner's, 90500 the owner has not
left (groupchat/transfer), 90502 the owner has left (onjob_transfer), 90506 transferred
twice in 90 days already (onjob_transfer), 90507 the departed owner's 300 groups a day are
used (groupchat/transfer). 90500 and 90502 are WeCom's; 90506 and 90507 are uncertain
(WeCom states the limits, not their errcodes). Call-level: 40058 over 100 chats or none,
40003 / 84074 a new owner unknown or without the customer-contact permission.

Errcodes: 40050 unknown chat_id (WeCom's "chatid不存在"), 40058 a limit out of range,
40003 an unknown member or customer (or one not in the group), 90500 the group
is full (uncertain: WeCom refuses the join in the client; 90500 is the chat-full errcode
of its group APIs).
"""

from dataclasses import asdict, dataclass, field

from flask import Blueprint, jsonify

from wechat import simulate
from wechat.sandbox import wecom, wecom_transfers
from wechat.sandbox.core import WECOM, ApiError, Sandbox, Tenant, body, ok, sandbox

bp = Blueprint("sandbox_wecom_groups", __name__)

GROUP_MEMBERS_MAX = 500
LIST_LIMIT_MAX = 1000
MEMBER, EXTERNAL = 1, 2
JOINED_DIRECTLY, JOINED_BY_LINK, JOINED_BY_QR = 1, 2, 3
# The callback's JoinScene: 0 invited (directly or by link), 3 by QR code; QuitScene: 0 left
# on their own, 1 removed by the owner or an administrator.
EVENT_JOIN_INVITED, EVENT_JOIN_BY_QR = 0, 3
QUIT_LEFT, QUIT_REMOVED = 0, 1
NORMAL = 0  # a group's status in groupchat/list (1-3: the owner left and a transfer runs)
CHATS_PER_TRANSFER = 100
GROUP_TRANSFERS_PER_WINDOW, GROUP_TRANSFER_WINDOW_SECONDS = 2, 90 * 86400
DEPARTED_GROUPS_PER_DAY = 300  # one departed owner's groups handed over a day
SAME_OWNER, OWNER_NOT_DEPARTED, OWNER_DEPARTED = 40130, 90500, 90502
GROUP_TOO_OFTEN, DEPARTED_DAILY_LIMIT = 90506, 90507


@dataclass
class GroupMember:
    userid: str
    type: int
    join_time: int
    join_scene: int
    invitor: str
    unionid: str = ""
    state: str = ""  # the 群活码's state they joined through


@dataclass
class CustomerGroup:
    chat_id: str
    name: str
    owner: str
    create_time: int
    notice: str = ""
    status: int = NORMAL
    members: list[GroupMember] = field(default_factory=list)
    transferred_at: list[float] = field(default_factory=list)  # onjob transfers


def groups_of(tenant: Tenant) -> dict[str, CustomerGroup]:
    return tenant.data.setdefault(f"{WECOM}_groups", {})


def inspect(tenant: Tenant) -> dict:
    return {"customer_groups": {k: asdict(g) for k, g in groups_of(tenant).items()}}


def _group_json(group: CustomerGroup, names: dict[str, str] | None = None) -> dict:
    """groupchat/get's group_chat; with `names` (need_name=1) each member's name."""
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
                **({"name": names[m.userid]} if names and m.userid in names else {}),
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
        chosen = [
            g
            for g in groups
            if (not status or g.status == status) and (not owners or g.owner in owners)
        ]
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
        names = None
        if data.get("need_name") == 1:
            corp = wecom.state_of(tenant)
            names = {u: s.name for u, s in corp.staff.items()}
            names.update({u: c.name for u, c in corp.external_contacts.items()})
        return ok(group_chat=_group_json(group, names))


def _transfer_groups(departed_owner: bool):
    tenant, corp = wecom.contact_api()
    data = body()
    chat_ids = data.get("chat_id_list") or []
    if not isinstance(chat_ids, list) or not 1 <= len(chat_ids) <= CHATS_PER_TRANSFER:
        raise ApiError(40058, f"chat_id_list holds 1..{CHATS_PER_TRANSFER} chats")
    new_owner = str(data.get("new_owner") or "")
    with sandbox().lock:
        wecom._contact_staff(corp, new_owner)
        transfers = wecom_transfers.transfers_of(tenant)
        day = int(sandbox().now() // 86400)
        handed = tenant.data.setdefault(f"{WECOM}_departed_groups_handed", {})
        failed = []
        for chat_id in dict.fromkeys(str(c) for c in chat_ids):
            errcode = _transfer_group(
                tenant, transfers, handed, day, chat_id, new_owner, departed_owner
            )
            if errcode:
                failed.append({"chat_id": chat_id, "errcode": errcode, "errmsg": "failed"})
        return ok(failed_chat_list=failed)


def _transfer_group(tenant, transfers, handed, day, chat_id, new_owner, departed_owner) -> int:
    group = groups_of(tenant).get(chat_id)
    if group is None:
        return 40050
    if group.owner == new_owner:
        return SAME_OWNER
    owner_left = group.owner in transfers.departed
    now = sandbox().now()
    if departed_owner:
        if not owner_left:
            return OWNER_NOT_DEPARTED
        if handed.get((group.owner, day), 0) >= DEPARTED_GROUPS_PER_DAY:
            return DEPARTED_DAILY_LIMIT
        handed[(group.owner, day)] = handed.get((group.owner, day), 0) + 1
    else:
        if owner_left:
            return OWNER_DEPARTED
        recent = [t for t in group.transferred_at if t > now - GROUP_TRANSFER_WINDOW_SECONDS]
        if len(recent) >= GROUP_TRANSFERS_PER_WINDOW:
            return GROUP_TOO_OFTEN
        group.transferred_at.append(now)
    if not any(m.userid == new_owner for m in group.members):
        group.members.append(GroupMember(new_owner, MEMBER, int(now), JOINED_DIRECTLY, ""))
    group.owner = new_owner
    return 0


@bp.post("/wecom/cgi-bin/externalcontact/groupchat/onjob_transfer")
def groupchat_onjob_transfer():
    return _transfer_groups(departed_owner=False)


@bp.post("/wecom/cgi-bin/externalcontact/groupchat/transfer")
def groupchat_transfer():
    return _transfer_groups(departed_owner=True)


# ---- what people do in the WeCom client, drivable over HTTP ----------------------------------


def _deliver(state: Sandbox, tenant: Tenant, change_type: str, chat_id: str, **extra) -> None:
    xml = simulate.wecom_chat_event(
        tenant.app_id, change_type, chat_id=chat_id, at=int(state.now()), **extra
    )
    state.deliver(tenant, xml)


def _group(tenant: Tenant, chat_id: str) -> CustomerGroup:
    group = groups_of(tenant).get(chat_id)
    if group is None:
        raise ApiError(40050, "chatid not found")
    return group


def create_group(
    state: Sandbox, tenant: Tenant, *, owner: str, name: str, notice: str = "", chat_id: str = ""
) -> CustomerGroup:
    """A staff member makes a group (delivers `create`); `chat_id`: a demo's fixed one."""
    if owner not in wecom.state_of(tenant).staff:
        raise ApiError(40003, f"invalid userid: {owner}")
    now = int(state.now())
    group = CustomerGroup(chat_id or wecom._new_id("wr", 20), name[:100], owner, now, notice)
    group.members.append(GroupMember(owner, MEMBER, now, JOINED_DIRECTLY, ""))
    groups_of(tenant)[group.chat_id] = group
    _deliver(state, tenant, "create", group.chat_id)
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
    member_state: str = "",
) -> GroupMember:
    """A member (a staff userid) or a customer (an external_userid) joins: the one way into
    a group (invited, by link, or by QR code with a 群活码's `member_state`); delivers
    `update` / `add_member`. Joining again changes nothing."""
    corp = wecom.state_of(tenant)
    group = _group(tenant, chat_id)
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
        userid, kind, int(state.now()), scene, invitor or group.owner, unionid, member_state
    )
    group.members.append(member)
    _deliver(
        state,
        tenant,
        "update",
        chat_id,
        UpdateDetail="add_member",
        JoinScene=EVENT_JOIN_BY_QR if scene == JOINED_BY_QR else EVENT_JOIN_INVITED,
        MemChangeCnt=1,
    )
    return member


def leave_group(
    state: Sandbox, tenant: Tenant, chat_id: str, userid: str, *, removed: bool = False
) -> None:
    """Someone leaves (or the owner removes them, `removed`): delivers `update` /
    `del_member`. The owner cannot leave a group they still own."""
    group = _group(tenant, chat_id)
    member = next((m for m in group.members if m.userid == userid), None)
    if member is None:
        raise ApiError(40003, f"{userid} is not in the group")
    if userid == group.owner:
        raise ApiError(40003, "the owner hands the group over before leaving")
    group.members.remove(member)
    _deliver(
        state,
        tenant,
        "update",
        chat_id,
        UpdateDetail="del_member",
        QuitScene=QUIT_REMOVED if removed else QUIT_LEFT,
        MemChangeCnt=1,
    )


def change_owner(state: Sandbox, tenant: Tenant, chat_id: str, owner: str) -> None:
    """The owner hands the group to another staff member (who joins if not in it)."""
    group = _group(tenant, chat_id)
    if owner not in wecom.state_of(tenant).staff:
        raise ApiError(40003, f"invalid userid: {owner}")
    if not any(m.userid == owner for m in group.members):
        if len(group.members) >= GROUP_MEMBERS_MAX:
            raise ApiError(90500, f"a group holds at most {GROUP_MEMBERS_MAX} people")
        group.members.append(GroupMember(owner, MEMBER, int(state.now()), JOINED_DIRECTLY, ""))
    group.owner = owner
    _deliver(state, tenant, "update", chat_id, UpdateDetail="change_owner")


def edit_group(
    state: Sandbox, tenant: Tenant, chat_id: str, *, name: str | None, notice: str | None
) -> None:
    """The owner renames the group or changes its notice (one event each)."""
    group = _group(tenant, chat_id)
    if name is not None and name[:100] != group.name:
        group.name = name[:100]
        _deliver(state, tenant, "update", chat_id, UpdateDetail="change_name")
    if notice is not None and notice != group.notice:
        group.notice = notice[:1000]
        _deliver(state, tenant, "update", chat_id, UpdateDetail="change_notice")


def dismiss_group(state: Sandbox, tenant: Tenant, chat_id: str) -> None:
    """The owner dismisses the group: gone from groupchat/list and get; delivers `dismiss`."""
    _group(tenant, chat_id)
    del groups_of(tenant)[chat_id]
    _deliver(state, tenant, "dismiss", chat_id)


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
        return jsonify(_group_json(_group(tenant, chat_id)))


@bp.post("/sandbox/wecom/<corp_id>/groups/<chat_id>/members/leave")
def http_leave_group(corp_id: str, chat_id: str):
    data = body()
    with sandbox().lock:
        tenant = sandbox().tenant(corp_id)
        for userid in data.get("userids") or []:
            leave_group(sandbox(), tenant, chat_id, str(userid), removed=bool(data.get("removed")))
        return jsonify(_group_json(_group(tenant, chat_id)))


@bp.post("/sandbox/wecom/<corp_id>/groups/<chat_id>/owner")
def http_change_owner(corp_id: str, chat_id: str):
    data = body()
    with sandbox().lock:
        tenant = sandbox().tenant(corp_id)
        change_owner(sandbox(), tenant, chat_id, str(data.get("owner") or ""))
        return jsonify(_group_json(_group(tenant, chat_id)))


@bp.post("/sandbox/wecom/<corp_id>/groups/<chat_id>")
def http_edit_group(corp_id: str, chat_id: str):
    data = body()
    with sandbox().lock:
        tenant = sandbox().tenant(corp_id)
        name, notice = data.get("name"), data.get("notice")
        edit_group(
            sandbox(),
            tenant,
            chat_id,
            name=None if name is None else str(name),
            notice=None if notice is None else str(notice),
        )
        return jsonify(_group_json(_group(tenant, chat_id)))


@bp.post("/sandbox/wecom/<corp_id>/groups/<chat_id>/dismiss")
def http_dismiss_group(corp_id: str, chat_id: str):
    with sandbox().lock:
        dismiss_group(sandbox(), sandbox().tenant(corp_id), chat_id)
        return jsonify({"chat_id": chat_id, "dismissed": True})
