"""WeCom customer groups (客户群): kept in step with `groupchat/list` and `groupchat/get`.

The drain makes no outbound call: a `change_external_chat` event only marks its group
(`note_group_event`), and `refresh_groups`, a job after the commit, reads each marked group
with `groupchat/get` and compares its members with what Harpoon knew. Each customer who
joined or left becomes a `wecom.group_join` / `wecom.group_leave` touchpoint in the inbox,
keyed by the group, the person and their join time, so the drain records it once (a
replayed event or a re-run job finds nothing new) and resolves the person there: by
external_userid, else unionid, else a new contact with the external_userid. The daily sync
(`sync_groups`) pages `groupchat/list`, marks every listed group for a refresh (the list
says nothing of what changed) and every group WeCom no longer lists as dismissed.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Select, distinct, func, select, update
from sqlalchemy.orm import Session

from crm.touchpoints import GROUP_JOIN as JOIN
from crm.touchpoints import GROUP_LEAVE as LEAVE
from crm.touchpoints import WEB, inbox_row
from models import (
    Account,
    Channel,
    Contact,
    CustomerGroup,
    CustomerGroupMember,
    GroupMemberType,
    InboundEvent,
    Interaction,
    utcnow,
)
from models.base import dialect_insert, insert_ignoring_conflicts
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

LIST_LIMIT = 1000  # groupchat/list's largest page
REFRESH_BATCH = 100  # groupchat/get calls per job run; the job asks for itself when more wait
CHAT_NOT_FOUND = 40050  # the group is gone (dismissed)
_ROWS_PER_STATEMENT = 500


@dataclass
class SyncResult:
    listed: int = 0
    dismissed: int = 0


@dataclass
class RefreshResult:
    refreshed: int = 0
    joins: int = 0
    leaves: int = 0
    failed: int = 0
    more: bool = False
    # (workspace_id, lane) of the touchpoints written: their drains are asked for.
    lanes: set[tuple[int, int]] = field(default_factory=set)


# ---- in the drain ---------------------------------------------------------------------------


def note_group_event(
    session: Session,
    *,
    workspace_id: int,
    channel_id: int,
    chat_id: str,
    change_type: str,
    update_detail: str | None,
    quit_scene: str | None,
    at: datetime,
) -> CustomerGroup:
    """A change_external_chat event: a dismissed group is marked so; any other change marks
    the group for the refresh job (made first when the event is the first Harpoon hears of
    it). A del_member's QuitScene waits on the group for the refresh that finds who left."""
    group = group_of(session, workspace_id, channel_id, chat_id)
    if change_type == "dismiss":
        group.dismissed_at = group.dismissed_at or at
        group.refresh_requested_at = None
    else:
        group.refresh_requested_at = group.refresh_requested_at or at
        if update_detail == "del_member" and (quit_scene or "").isdigit():
            group.pending_quit_scene = int(quit_scene)
    if group.activity_at is None or _aware(group.activity_at) < at:
        group.activity_at = at
    return group


def group_of(session: Session, workspace_id: int, channel_id: int, chat_id: str) -> CustomerGroup:
    """The corp's group of this chat_id, made (empty, to be refreshed) if Harpoon has none."""
    where = (
        CustomerGroup.workspace_id == workspace_id,
        CustomerGroup.channel_id == channel_id,
        CustomerGroup.chat_id == chat_id,
    )
    group = session.scalars(select(CustomerGroup).where(*where)).one_or_none()
    if group is None:
        session.execute(
            insert_ignoring_conflicts(session.get_bind().dialect.name, CustomerGroup.__table__),
            [_new_group(workspace_id, channel_id, chat_id)],
        )
        group = session.scalars(select(CustomerGroup).where(*where)).one()
    return group


def link_member(
    session: Session, workspace_id: int, group_id: int, userid: str, contact_id: int
) -> None:
    """The member row of a customer the drain resolved to a contact."""
    session.execute(
        update(CustomerGroupMember)
        .where(
            CustomerGroupMember.workspace_id == workspace_id,
            CustomerGroupMember.group_id == group_id,
            CustomerGroupMember.userid == userid,
        )
        .values(contact_id=contact_id)
    )


# ---- pages ----------------------------------------------------------------------------------


def groups_query(
    workspace_id: int, *, owner_userid: str | None = None, account_id: int | None = None
) -> Select:
    """The workspace's groups, the most recently active first (dismissed ones last);
    optionally one owner's, or those an account's people are in now."""
    stmt = select(CustomerGroup).where(CustomerGroup.workspace_id == workspace_id)
    if owner_userid:
        stmt = stmt.where(CustomerGroup.owner_userid == owner_userid)
    if account_id is not None:
        stmt = stmt.where(
            CustomerGroup.id.in_(
                select(CustomerGroupMember.group_id)
                .join(Contact, Contact.id == CustomerGroupMember.contact_id)
                .where(
                    CustomerGroupMember.workspace_id == workspace_id,
                    CustomerGroupMember.left_at.is_(None),
                    Contact.workspace_id == workspace_id,
                    Contact.account_id == account_id,
                )
            )
        )
    return stmt.order_by(
        CustomerGroup.dismissed_at.is_not(None),
        CustomerGroup.activity_at.is_(None),
        CustomerGroup.activity_at.desc(),
        CustomerGroup.id.desc(),
    )


def accounts_represented(session: Session, workspace_id: int, group_ids: list[int]) -> dict:
    """group id -> how many accounts its present customers belong to."""
    if not group_ids:
        return {}
    rows = session.execute(
        select(CustomerGroupMember.group_id, func.count(distinct(Contact.account_id)))
        .join(Contact, Contact.id == CustomerGroupMember.contact_id)
        .where(
            CustomerGroupMember.workspace_id == workspace_id,
            CustomerGroupMember.group_id.in_(group_ids),
            CustomerGroupMember.left_at.is_(None),
            Contact.workspace_id == workspace_id,
            Contact.account_id.is_not(None),
        )
        .group_by(CustomerGroupMember.group_id)
    )
    return dict(rows.all())


def group_owners(session: Session, workspace_id: int) -> list[tuple[int, str]]:
    """(channel id, userid) of the staff who own a group of the workspace."""
    return session.execute(
        select(CustomerGroup.channel_id, CustomerGroup.owner_userid)
        .where(CustomerGroup.workspace_id == workspace_id, CustomerGroup.owner_userid != "")
        .distinct()
        .order_by(CustomerGroup.channel_id, CustomerGroup.owner_userid)
    ).all()


def group_members(session: Session, group: CustomerGroup) -> list:
    """(member, contact or None, account or None) of everyone who is or was in the group:
    present members first, then by account and name."""
    return session.execute(
        select(CustomerGroupMember, Contact, Account)
        .outerjoin(
            Contact,
            (Contact.id == CustomerGroupMember.contact_id)
            & (Contact.workspace_id == group.workspace_id),
        )
        .outerjoin(
            Account,
            (Account.id == Contact.account_id) & (Account.workspace_id == group.workspace_id),
        )
        .where(
            CustomerGroupMember.workspace_id == group.workspace_id,
            CustomerGroupMember.group_id == group.id,
        )
        .order_by(
            CustomerGroupMember.left_at.is_not(None),
            Account.name.is_(None),
            Account.name,
            CustomerGroupMember.member_type,
            CustomerGroupMember.joined_at,
        )
    ).all()


def group_activity(session: Session, group: CustomerGroup, limit: int) -> list:
    """(interaction, contact name) of the group's people (now or before), newest first:
    their joins and leaves, and whatever else they did."""
    people = select(CustomerGroupMember.contact_id).where(
        CustomerGroupMember.workspace_id == group.workspace_id,
        CustomerGroupMember.group_id == group.id,
        CustomerGroupMember.contact_id.is_not(None),
    )
    return session.execute(
        select(Interaction, Contact.name)
        .join(Contact, Contact.id == Interaction.contact_id)
        .where(
            Interaction.workspace_id == group.workspace_id,
            Interaction.contact_id.in_(people),
        )
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
        .limit(limit)
    ).all()


def account_groups(session: Session, workspace_id: int, account_id: int) -> list:
    """(group, how many of the account's people are in it now) for an account's page."""
    return session.execute(
        select(CustomerGroup, func.count(CustomerGroupMember.id))
        .join(CustomerGroupMember, CustomerGroupMember.group_id == CustomerGroup.id)
        .join(Contact, Contact.id == CustomerGroupMember.contact_id)
        .where(
            CustomerGroup.workspace_id == workspace_id,
            CustomerGroupMember.workspace_id == workspace_id,
            CustomerGroupMember.left_at.is_(None),
            Contact.workspace_id == workspace_id,
            Contact.account_id == account_id,
        )
        .group_by(CustomerGroup.id)
        .order_by(func.count(CustomerGroupMember.id).desc(), CustomerGroup.name)
    ).all()


# ---- jobs -----------------------------------------------------------------------------------


def sync_groups(session: Session, channel: Channel, client, now: datetime | None = None):
    """Every group of the corp from groupchat/list (cursor pages of LIST_LIMIT), each marked
    for a refresh; groups no longer listed are dismissed. Committed."""
    now = now or utcnow()
    listed: dict[str, int] = {}
    cursor = ""
    while True:
        page = client.post(
            "externalcontact/groupchat/list",
            data={"status_filter": 0, "cursor": cursor, "limit": LIST_LIMIT},
        )
        for item in page.get("group_chat_list") or []:
            listed[str(item["chat_id"])] = int(item.get("status") or 0)
        cursor = page.get("next_cursor") or ""
        if not cursor:
            break
    table = CustomerGroup.__table__
    rows = [
        {
            **_new_group(channel.workspace_id, channel.id, chat_id),
            "status": status,
            "refresh_requested_at": now,
        }
        for chat_id, status in listed.items()
    ]
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        stmt = dialect_insert(session.get_bind().dialect.name, table).values(
            rows[start : start + _ROWS_PER_STATEMENT]
        )
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=[table.c.channel_id, table.c.chat_id],
                set_={
                    "status": stmt.excluded.status,
                    "refresh_requested_at": func.coalesce(table.c.refresh_requested_at, now),
                    "dismissed_at": None,
                },
            )
        )
    known = session.execute(
        select(CustomerGroup.id, CustomerGroup.chat_id).where(
            CustomerGroup.workspace_id == channel.workspace_id,
            CustomerGroup.channel_id == channel.id,
            CustomerGroup.dismissed_at.is_(None),
        )
    ).all()
    gone = [group_id for group_id, chat_id in known if chat_id not in listed]
    for start in range(0, len(gone), _ROWS_PER_STATEMENT):
        session.execute(
            update(CustomerGroup)
            .where(CustomerGroup.id.in_(gone[start : start + _ROWS_PER_STATEMENT]))
            .values(dismissed_at=now, refresh_requested_at=None)
        )
    session.commit()
    return SyncResult(listed=len(listed), dismissed=len(gone))


def refresh_groups(
    session: Session,
    channel: Channel,
    client,
    lanes: int,
    *,
    limit: int = REFRESH_BATCH,
    now: datetime | None = None,
) -> RefreshResult:
    """groupchat/get for the corp's marked groups, oldest mark first, each committed with
    the members' changes and the touchpoints of the customers who joined or left."""
    result = RefreshResult()
    marked = list(
        session.scalars(
            select(CustomerGroup)
            .where(
                CustomerGroup.workspace_id == channel.workspace_id,
                CustomerGroup.channel_id == channel.id,
                CustomerGroup.refresh_requested_at.is_not(None),
            )
            .order_by(CustomerGroup.refresh_requested_at, CustomerGroup.id)
            .limit(limit + 1)
        )
    )
    result.more = len(marked) > limit
    for group in marked[:limit]:
        asked_at = group.refresh_requested_at
        at = now or utcnow()
        try:
            answer = client.post(
                "externalcontact/groupchat/get", data={"chat_id": group.chat_id, "need_name": 1}
            )
        except WeChatApiError as exc:
            if exc.errcode == CHAT_NOT_FOUND:
                group.dismissed_at = group.dismissed_at or at
                group.refresh_requested_at = None
            else:  # tried again after the groups waiting behind it
                log.warning("groupchat/get of group %s refused: %s", group.id, exc)
                group.refresh_requested_at = at
                result.failed += 1
            session.commit()
            continue
        joins, leaves = apply_group(session, group, answer["group_chat"], at, asked_at)
        result.lanes |= _store_touchpoints(session, group, joins, leaves, lanes, at)
        result.joins += len(joins)
        result.leaves += len(leaves)
        result.refreshed += 1
        # An event that came during the call asked again: its mark stays.
        session.execute(
            update(CustomerGroup)
            .where(CustomerGroup.id == group.id, CustomerGroup.refresh_requested_at == asked_at)
            .values(refresh_requested_at=None)
        )
        session.commit()
    return result


def apply_group(
    session: Session, group: CustomerGroup, data: dict, now: datetime, asked_at: datetime | None
) -> tuple[list[dict], list[CustomerGroupMember]]:
    """groupchat/get's group_chat onto the group and its members (one upsert); returns the
    member rows of those who joined (new, back, or joined again since) and the members who
    are gone (left at `asked_at`, the event's time, with the QuitScene the event gave)."""
    group.name = str(data.get("name") or "")[:100]
    group.owner_userid = str(data.get("owner") or "")[:64]
    group.notice = str(data.get("notice") or "")[:1000]
    if data.get("create_time"):
        group.created_at = _from_ts(data["create_time"])
    group.dismissed_at = None
    existing = {
        m.userid: m
        for m in session.scalars(
            select(CustomerGroupMember).where(
                CustomerGroupMember.workspace_id == group.workspace_id,
                CustomerGroupMember.group_id == group.id,
            )
        )
    }
    rows, joins = [], []
    for member in data.get("member_list") or []:
        userid = str(member.get("userid") or "")[:128]
        if not userid:
            continue
        joined_at = _from_ts(member["join_time"]) if member.get("join_time") else now
        row = {
            "workspace_id": group.workspace_id,
            "group_id": group.id,
            "userid": userid,
            "member_type": int(member.get("type") or GroupMemberType.EXTERNAL),
            "unionid": str(member["unionid"])[:128] if member.get("unionid") else None,
            "name": str(member.get("name") or "")[:100],
            "join_scene": member.get("join_scene"),
            "invitor": (str((member.get("invitor") or {}).get("userid") or "")[:64] or None),
            "state": str(member["state"])[:30] if member.get("state") else None,
            "joined_at": joined_at,
            "left_at": None,
            "quit_scene": None,
        }
        rows.append(row)
        old = existing.get(userid)
        if (
            old is None
            or old.left_at is not None
            or old.joined_at is None
            or _aware(old.joined_at) != joined_at
        ):
            joins.append(row)
    present = {row["userid"] for row in rows}
    leaves = [m for uid, m in existing.items() if uid not in present and m.left_at is None]
    left_at = _aware(asked_at) if asked_at else now
    for member in leaves:
        member.left_at, member.quit_scene = left_at, group.pending_quit_scene
    if rows:
        table = CustomerGroupMember.__table__
        stmt = dialect_insert(session.get_bind().dialect.name, table).values(rows)
        kept = ("contact_id", "id", "workspace_id", "group_id", "userid")
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=[table.c.group_id, table.c.userid],
                set_={c.name: stmt.excluded[c.name] for c in table.c if c.name not in kept},
            )
        )
    group.member_count = len(rows)
    group.external_count = sum(r["member_type"] == GroupMemberType.EXTERNAL for r in rows)
    group.pending_quit_scene = None
    group.synced_at = now
    changed = [r["joined_at"] for r in joins] + ([left_at] if leaves else [])
    latest = max(changed, default=None)
    if latest is not None and (group.activity_at is None or _aware(group.activity_at) < latest):
        group.activity_at = latest
    return joins, leaves


def _store_touchpoints(
    session: Session,
    group: CustomerGroup,
    joins: list[dict],
    leaves: list[CustomerGroupMember],
    lanes: int,
    received_at: datetime,
) -> set[tuple[int, int]]:
    """Each customer's join or leave as a touchpoint in the inbox, keyed by the group, the
    person and their join time: written once however often the group is refreshed."""
    rows = []
    for join in joins:
        if join["member_type"] != GroupMemberType.EXTERNAL:
            continue
        properties = {
            "chat_id": group.chat_id,
            "group_name": group.name,
            "join_scene": join["join_scene"],
            "state": join["state"],
            "invitor": join["invitor"],
        }
        rows.append(
            _touchpoint(group, JOIN, join, join["joined_at"], properties, lanes, received_at)
        )
    for member in leaves:
        if member.member_type != GroupMemberType.EXTERNAL:
            continue
        properties = {
            "chat_id": group.chat_id,
            "group_name": group.name,
            "quit_scene": member.quit_scene,
        }
        person = {
            "userid": member.userid,
            "unionid": member.unionid,
            "name": member.name,
            "joined_at": member.joined_at,
        }
        rows.append(
            _touchpoint(group, LEAVE, person, member.left_at, properties, lanes, received_at)
        )
    if rows:
        session.execute(
            insert_ignoring_conflicts(session.get_bind().dialect.name, InboundEvent.__table__),
            rows,
        )
    return {(row["workspace_id"], row["lane"]) for row in rows}


def _touchpoint(group, kind, person, occurred_at, properties, lanes, received_at) -> dict:
    identity = {"external_userid": person["userid"], "channel_id": group.channel_id}
    if person.get("unionid"):
        identity["unionid"] = person["unionid"]
    joined = int(_aware(person["joined_at"]).timestamp()) if person.get("joined_at") else 0
    verb = "join" if kind == JOIN else "leave"
    payload = {
        "kind": kind,
        "occurred_at": _aware(occurred_at).isoformat(),
        "identity": identity,
        "person": {"name": person["name"]} if person.get("name") else {},
        "properties": {k: v for k, v in properties.items() if v not in (None, "")},
        "refs": {"group_id": group.id, "userid": person["userid"]},
    }
    key = f"group:{verb}:{group.chat_id}:{person['userid']}:{joined}"
    return inbox_row(group.workspace_id, group.channel_id, WEB, key, payload, received_at, lanes)


def _new_group(workspace_id: int, channel_id: int, chat_id: str) -> dict:
    return {
        "workspace_id": workspace_id,
        "channel_id": channel_id,
        "chat_id": chat_id[:64],
        "name": "",
        "owner_userid": "",
        "notice": "",
        "status": 0,
        "member_count": 0,
        "external_count": 0,
    }


def _from_ts(ts) -> datetime:
    return datetime.fromtimestamp(int(ts), UTC)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)
