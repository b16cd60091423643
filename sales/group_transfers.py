"""Customer groups moving with a customer transfer (sales.transfers).

A transfer of a salesperson's customers takes the groups they own along: every group when
the transfer takes all of their customers (or they left the corp), otherwise the groups
whose customers of theirs are all among those transferred. Each group is an item sent
after the customers: `groupchat/onjob_transfer` for an owner in service,
`groupchat/transfer` for a departed one, 100 chats a call, with WeCom's answer per chat
(its limits: two onjob transfers of a group in 90 days, 300 of a departed owner's groups
a day). As with customers, an item is marked `sending` with the call's key and committed
before the call; one a crash left `sending` is looked up with groupchat/get (the group is
the new owner's: done; otherwise queued again), never blindly sent twice.
"""

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.transient import is_transient, may_have_gone_out
from models import (
    CustomerGroup,
    CustomerGroupMember,
    FollowRelation,
    GroupMemberType,
    GroupTransferItem,
    GroupTransferStatus,
    Transfer,
    TransferKind,
    utcnow,
)
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

CHATS_PER_CALL = 100
SENDING_GRACE = timedelta(minutes=2)
ENDPOINTS = {
    TransferKind.IN_SERVICE: "externalcontact/groupchat/onjob_transfer",
    TransferKind.DEPARTED: "externalcontact/groupchat/transfer",
}
OPEN = (GroupTransferStatus.QUEUED, GroupTransferStatus.SENDING)
ERRCODE_REASONS = {
    40050: "the group no longer exists",
    40130: "the group is the takeover's already",
    90500: "the owner has not left the corp",
    90502: "the owner has left the corp: transfer as departed",
    90506: "transferred too often: 2 transfers a group in 90 days",
    90507: "the departed owner's 300 groups a day are used",
}


def plan_group_transfer(session: Session, transfer: Transfer, chosen: list[str]) -> int:
    """Queue the handover's groups that move with these customers (flushed); how many."""
    ws = transfer.workspace_id
    owned = {
        group.id: group
        for group in session.scalars(
            select(CustomerGroup).where(
                CustomerGroup.workspace_id == ws,
                CustomerGroup.channel_id == transfer.channel_id,
                CustomerGroup.owner_userid == transfer.handover_userid,
                CustomerGroup.dismissed_at.is_(None),
            )
        )
    }
    busy = set(
        session.scalars(
            select(GroupTransferItem.group_id).where(
                GroupTransferItem.workspace_id == ws,
                GroupTransferItem.group_id.in_(list(owned)),
                GroupTransferItem.status.in_(OPEN),
            )
        )
    )
    moving = [group_id for group_id in owned if group_id not in busy]
    if transfer.kind == TransferKind.IN_SERVICE and moving:
        moving = _groups_of_chosen(session, transfer, moving, set(chosen))
    for group_id in moving:
        session.add(
            GroupTransferItem(
                workspace_id=ws,
                transfer_id=transfer.id,
                group_id=group_id,
                chat_id=owned[group_id].chat_id,
                status=GroupTransferStatus.QUEUED,
            )
        )
    session.flush()
    return len(moving)


def _groups_of_chosen(
    session: Session, transfer: Transfer, group_ids: list[int], chosen: set[str]
) -> list[int]:
    """All of them when every current customer of the handover is chosen; else those whose
    present customers of the handover are all chosen (and at least one is)."""
    current = set(
        session.scalars(
            select(FollowRelation.external_userid).where(
                FollowRelation.workspace_id == transfer.workspace_id,
                FollowRelation.channel_id == transfer.channel_id,
                FollowRelation.staff_userid == transfer.handover_userid,
                FollowRelation.removed_at.is_(None),
            )
        )
    )
    if current <= chosen:
        return group_ids
    theirs: dict[int, set[str]] = {}
    for group_id, userid in session.execute(
        select(CustomerGroupMember.group_id, CustomerGroupMember.userid).where(
            CustomerGroupMember.workspace_id == transfer.workspace_id,
            CustomerGroupMember.group_id.in_(group_ids),
            CustomerGroupMember.member_type == GroupMemberType.EXTERNAL,
            CustomerGroupMember.left_at.is_(None),
        )
    ):
        if userid in current:
            theirs.setdefault(group_id, set()).add(userid)
    return [g for g in group_ids if theirs.get(g) and theirs[g] <= chosen]


def send_group_transfer(session: Session, transfer: Transfer, client) -> None:
    """Hand the transfer's queued groups to the takeover, 100 a call; commits after each.
    Raises as send_transfer does: transient before the call (items queued again), or a
    call that may have gone out (items left `sending`, looked up on the next run)."""
    _look_up_sending(session, transfer, client)
    endpoint = ENDPOINTS[TransferKind(transfer.kind)]
    while True:
        batch = list(
            session.scalars(
                select(GroupTransferItem)
                .where(
                    GroupTransferItem.workspace_id == transfer.workspace_id,
                    GroupTransferItem.transfer_id == transfer.id,
                    GroupTransferItem.status == GroupTransferStatus.QUEUED,
                )
                .order_by(GroupTransferItem.id)
                .limit(CHATS_PER_CALL)
                .with_for_update(skip_locked=True)
            )
        )
        if not batch:
            return
        key = f"g{transfer.id}:{batch[0].id}"
        for item in batch:
            item.status, item.call_key, item.sent_at = GroupTransferStatus.SENDING, key, utcnow()
        session.commit()  # the idempotency key, before the call
        data = {
            "chat_id_list": [item.chat_id for item in batch],
            "new_owner": transfer.takeover_userid,
        }
        try:
            answer = client.post(endpoint, data=data)
        except WeChatApiError as exc:
            if may_have_gone_out(exc):
                log.warning("group transfer %s call %s unanswered: %s", transfer.id, key, exc)
                raise
            if is_transient(exc):
                for item in batch:
                    item.status, item.call_key, item.sent_at = (
                        GroupTransferStatus.QUEUED,
                        None,
                        None,
                    )
                session.commit()
                raise
            for item in batch:
                _final(item, GroupTransferStatus.FAILED, exc.errcode, str(exc))
            session.commit()
            continue
        failed = {
            row.get("chat_id"): int(row.get("errcode") or 0)
            for row in answer.get("failed_chat_list") or []
        }
        for item in batch:
            errcode = failed.get(item.chat_id, 0)
            if errcode:
                reason = ERRCODE_REASONS.get(errcode, "refused by WeCom")
                _final(item, GroupTransferStatus.FAILED, errcode, reason)
            else:
                _done(session, transfer, item)
        session.commit()


def _look_up_sending(session: Session, transfer: Transfer, client) -> None:
    stale = list(
        session.scalars(
            select(GroupTransferItem).where(
                GroupTransferItem.workspace_id == transfer.workspace_id,
                GroupTransferItem.transfer_id == transfer.id,
                GroupTransferItem.status == GroupTransferStatus.SENDING,
                GroupTransferItem.sent_at < utcnow() - SENDING_GRACE,
            )
        )
    )
    for item in stale:
        try:
            group = client.post("externalcontact/groupchat/get", data={"chat_id": item.chat_id})[
                "group_chat"
            ]
        except WeChatApiError as exc:
            if exc.errcode != 40050:
                raise
            _final(item, GroupTransferStatus.FAILED, exc.errcode, ERRCODE_REASONS[40050])
            continue
        if group.get("owner") == transfer.takeover_userid:
            _done(session, transfer, item)
        else:
            item.status, item.call_key, item.sent_at = GroupTransferStatus.QUEUED, None, None
    session.commit()


def _done(session: Session, transfer: Transfer, item: GroupTransferItem) -> None:
    """WeCom gave the group to the takeover (an API change: no callback says so)."""
    item.status, item.errcode, item.error = GroupTransferStatus.DONE, None, None
    item.finished_at = utcnow()
    group = session.get(CustomerGroup, item.group_id)
    if group is not None and group.workspace_id == transfer.workspace_id:
        group.owner_userid = transfer.takeover_userid
        group.refresh_requested_at = group.refresh_requested_at or utcnow()


def _final(item: GroupTransferItem, status: str, errcode: int | None, error: str) -> None:
    item.status, item.errcode, item.error = status, errcode, (error or "")[:500] or None
    item.finished_at = utcnow()


def group_items(session: Session, workspace_id: int, transfer_id: int) -> list:
    """(item, group) of a transfer's groups, for its page."""
    return session.execute(
        select(GroupTransferItem, CustomerGroup)
        .join(CustomerGroup, CustomerGroup.id == GroupTransferItem.group_id)
        .where(
            GroupTransferItem.workspace_id == workspace_id,
            GroupTransferItem.transfer_id == transfer_id,
            CustomerGroup.workspace_id == workspace_id,
        )
        .order_by(GroupTransferItem.id)
    ).all()
