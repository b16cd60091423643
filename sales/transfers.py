"""Customer transfers (客户继承): a salesperson's WeCom customers handed to another.

A transfer names a handover and a takeover member of one corp and, per customer, an
item tracked to the end: queued -> sending (recorded before the call) -> waiting (WeCom
started the takeover: it completes 24 hours later unless the customer refuses) -> done,
or refused / limit / failed with WeCom's errcode. In service it goes through
externalcontact/transfer_customer; for a member who left (the staff sync marked them
inactive) through resigned/transfer_customer with the customers get_unassigned_list
names.

The handover's customer groups go along (sales.group_transfers): sent after the
customers, each group's outcome recorded.

Account-aware: choosing an account takes all of its contacts who are the handover's
customers. When a customer's takeover is done, Harpoon's follow relation moves, the
contact's open tasks go to the takeover's user, and once all of an account's customers
of the transfer are settled the account's timeline says so; its owner becomes the
takeover's user when the handover kept none of its customers and owned it (or nobody did).

A crash never transfers twice: an item is marked `sending` with the call's key and
committed before the call; one found still sending is looked up with transfer_result,
and only a customer WeCom has no record of is sent again.
"""

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from marshmallow import ValidationError
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from core.references import CHANNEL, STAFF, Reference, check_references, declare
from core.transient import is_transient, may_have_gone_out
from crm.channels import wecom_channel
from crm.timeline import record_account_event
from models import (
    FINAL_ITEM_STATUSES,
    Account,
    AccountEventKind,
    Contact,
    FollowRelation,
    Identity,
    IdentityKind,
    Staff,
    Task,
    TaskStatus,
    Transfer,
    TransferItem,
    TransferItemStatus,
    TransferKind,
    User,
    utcnow,
)
from sales.group_transfers import plan_group_transfer, send_group_transfer
from wechat.clients import WeChatApiError, chunks

log = logging.getLogger(__name__)

CUSTOMERS_PER_CALL = 100  # WeCom's limit of external_userid per transfer_customer
MAX_MESSAGE = 200  # transfer_success_msg
MAX_CUSTOMERS = 10_000  # one transfer's customers
LOOKUP_CHUNK = 500
RESULTS_PAGE_SIZE = 1000
UNASSIGNED_PAGE_SIZE = 1000
# An item sending longer than this lost its job (a call times out well before): it is
# looked up in WeCom. A younger one may be another job's call in flight: left alone.
SENDING_GRACE = timedelta(minutes=2)
# A transfer with customers still queued this long after it was made lost its send job.
QUEUED_GRACE = timedelta(minutes=10)
# transfer_result's statuses per customer.
DONE, WAITING, REFUSED, LIMIT, NO_RECORD = 1, 2, 3, 4, 5
RESULT_STATUSES = {
    DONE: TransferItemStatus.DONE,
    WAITING: TransferItemStatus.WAITING,
    REFUSED: TransferItemStatus.REFUSED,
    LIMIT: TransferItemStatus.LIMIT,
}
# Per-customer errcodes of transfer_customer (WeCom's global errcode list).
TOO_OFTEN, IN_TRANSFER, SAME_MEMBER, NOT_HANDOVERS, TAKEOVER_FULL = (
    40128,
    40129,
    40130,
    40131,
    40099,
)
ERRCODE_REASONS = {
    TOO_OFTEN: "transferred too often: 2 transfers a customer in 90 days",
    IN_TRANSFER: "the customer is being transferred already",
    SAME_MEMBER: "the handover and the takeover are the same member",
    NOT_HANDOVERS: "not the handover's customer",
    TAKEOVER_FULL: "the takeover is at their customer limit",
}
FAIL_REASONS = {
    "customer_refused": TransferItemStatus.REFUSED,
    "customer_limit_exceed": TransferItemStatus.LIMIT,
}
OPEN_STATUSES = (
    TransferItemStatus.QUEUED,
    TransferItemStatus.SENDING,
    TransferItemStatus.WAITING,
)
ENDPOINTS = {
    TransferKind.IN_SERVICE: (
        "externalcontact/transfer_customer",
        "externalcontact/transfer_result",
    ),
    TransferKind.DEPARTED: (
        "externalcontact/resigned/transfer_customer",
        "externalcontact/resigned/transfer_result",
    ),
}
REFERENCES = declare(
    "transfer",
    Reference("channel_id", CHANNEL),
    Reference("handover_userid", STAFF),
    Reference("takeover_userid", STAFF),
)


@dataclass
class NewTransfer:
    transfer: Transfer
    # Asked for but left out: not the handover's customers, or in another open transfer.
    not_customers: list[str]
    in_transfer: list[str]


def create_transfer(
    session: Session,
    workspace_id: int,
    *,
    channel_id: int,
    handover_userid: str,
    takeover_userid: str,
    kind: TransferKind,
    external_userids: list[str],
    account_id: int | None = None,
    message: str = "",
    created_by: int | None = None,
) -> NewTransfer:
    """A transfer with one queued item per customer (flushed, not committed). In service the
    customers are the handover's current ones in Harpoon; for a departed member those the
    caller took from get_unassigned_list. Raises a ValidationError keyed by argument."""
    named = {
        "channel_id": channel_id,
        "handover_userid": handover_userid,
        "takeover_userid": takeover_userid,
    }
    check_references(session, workspace_id, named, REFERENCES)
    channel = wecom_channel(session, workspace_id, channel_id)
    if channel is None:
        raise ValidationError({"channel_id": ["No such WeCom corp in this workspace."]})
    handover = _staff(session, workspace_id, channel.id, handover_userid)
    takeover = _staff(session, workspace_id, channel.id, takeover_userid)
    if handover is None:
        raise ValidationError({"handover_userid": ["Not a staff member of this corp."]})
    if takeover is None or not takeover.active:
        raise ValidationError({"takeover_userid": ["Not an active staff member of this corp."]})
    if takeover.userid == handover.userid:
        raise ValidationError({"takeover_userid": ["The takeover must be another member."]})
    if kind == TransferKind.IN_SERVICE and not handover.active:
        raise ValidationError({"handover_userid": ["This member has left: transfer as departed."]})
    if kind == TransferKind.DEPARTED and handover.active:
        raise ValidationError({"handover_userid": ["This member has not left the corp."]})
    if len(message or "") > MAX_MESSAGE:
        raise ValidationError({"message": [f"At most {MAX_MESSAGE} characters."]})
    if (
        account_id is not None
        and session.scalar(
            select(Account.id).where(Account.id == account_id, Account.workspace_id == workspace_id)
        )
        is None
    ):
        raise ValidationError({"account_id": ["Not an account of this workspace."]})
    requested = list(dict.fromkeys(e for e in external_userids if e and len(e) <= 128))
    if not requested:
        raise ValidationError({"external_userids": ["Choose at least one customer."]})
    if len(requested) > MAX_CUSTOMERS:
        raise ValidationError({"external_userids": [f"At most {MAX_CUSTOMERS:,} customers."]})
    relations = _relations(session, channel.id, handover.userid, requested)
    if kind == TransferKind.IN_SERVICE:
        current = {ext for ext, relation in relations.items() if relation.removed_at is None}
        not_customers = [ext for ext in requested if ext not in current]
    else:
        not_customers = []
    busy = _in_open_transfers(session, channel.id, requested)
    chosen = [ext for ext in requested if ext not in busy and ext not in not_customers]
    if not chosen:
        raise ValidationError(
            {
                "external_userids": [
                    "None of them can be transferred: not the handover's "
                    "customers, or in another transfer already."
                ]
            }
        )
    contacts = _contacts(session, workspace_id, channel.id, chosen, relations)
    transfer = Transfer(
        workspace_id=workspace_id,
        channel_id=channel.id,
        kind=kind,
        handover_userid=handover.userid,
        takeover_userid=takeover.userid,
        account_id=account_id,
        message=message or None,
        created_by=created_by,
    )
    session.add(transfer)
    session.flush()
    for ext in chosen:
        contact_id, contact_account = contacts.get(ext, (None, None))
        session.add(
            TransferItem(
                workspace_id=workspace_id,
                channel_id=channel.id,
                transfer_id=transfer.id,
                external_userid=ext,
                contact_id=contact_id,
                account_id=contact_account,
                status=TransferItemStatus.QUEUED,
            )
        )
    session.flush()
    plan_group_transfer(session, transfer, chosen)  # their customer groups move with them
    return NewTransfer(transfer, not_customers, [ext for ext in requested if ext in busy])


def account_customers(
    session: Session, workspace_id: int, channel_id: int, handover_userid: str, account_id: int
) -> list[str]:
    """The external_userids of the account's contacts who are the member's customers now."""
    return list(
        session.scalars(
            select(FollowRelation.external_userid)
            .join(
                Contact,
                (Contact.id == FollowRelation.contact_id) & (Contact.workspace_id == workspace_id),
            )
            .where(
                FollowRelation.workspace_id == workspace_id,
                FollowRelation.channel_id == channel_id,
                FollowRelation.staff_userid == handover_userid,
                FollowRelation.removed_at.is_(None),
                Contact.account_id == account_id,
            )
            .order_by(FollowRelation.id)
        )
    )


def current_customers(session: Session, staff: Staff) -> list:
    """The member's customers now: (external_userid, contact, account or None), by account
    then name, for choosing whom to transfer."""
    ws = staff.workspace_id
    return session.execute(
        select(FollowRelation.external_userid, Contact, Account)
        .join(Contact, (Contact.id == FollowRelation.contact_id) & (Contact.workspace_id == ws))
        .outerjoin(Account, (Account.id == Contact.account_id) & (Account.workspace_id == ws))
        .where(
            FollowRelation.workspace_id == ws,
            FollowRelation.channel_id == staff.channel_id,
            FollowRelation.staff_userid == staff.userid,
            FollowRelation.removed_at.is_(None),
        )
        .order_by(Account.name.nulls_last(), Contact.name, FollowRelation.id)
    ).all()


def staff_accounts_with_customers(session: Session, workspace_id: int, account_id: int) -> list:
    """(staff, customers of the account they have now) for the account's transfer link."""
    return session.execute(
        select(Staff, FollowRelation.external_userid)
        .join(
            FollowRelation,
            (FollowRelation.channel_id == Staff.channel_id)
            & (FollowRelation.staff_userid == Staff.userid),
        )
        .join(Contact, Contact.id == FollowRelation.contact_id)
        .where(
            Staff.workspace_id == workspace_id,
            FollowRelation.workspace_id == workspace_id,
            FollowRelation.removed_at.is_(None),
            Contact.workspace_id == workspace_id,
            Contact.account_id == account_id,
        )
        .order_by(Staff.name, Staff.id)
    ).all()


def transfers_query(workspace_id: int) -> Select:
    """The workspace's transfers with their creator's name, newest first."""
    return (
        select(Transfer, User.name)
        .outerjoin(User, (User.id == Transfer.created_by) & (User.workspace_id == workspace_id))
        .where(Transfer.workspace_id == workspace_id)
        .order_by(Transfer.created_at.desc(), Transfer.id.desc())
    )


def transfer_items_query(workspace_id: int, transfer_id: int) -> Select:
    """The transfer's items with their contact and account (either may be None), in order."""
    return (
        select(TransferItem, Contact, Account)
        .outerjoin(
            Contact,
            (Contact.id == TransferItem.contact_id) & (Contact.workspace_id == workspace_id),
        )
        .outerjoin(
            Account,
            (Account.id == TransferItem.account_id) & (Account.workspace_id == workspace_id),
        )
        .where(TransferItem.transfer_id == transfer_id, TransferItem.workspace_id == workspace_id)
        .order_by(TransferItem.id)
    )


def staff_members(session: Session, workspace_id: int) -> list[Staff]:
    """The workspace's staff of every corp, by name: who may hand customers over."""
    return list(
        session.scalars(
            select(Staff)
            .where(Staff.workspace_id == workspace_id)
            .order_by(Staff.name, Staff.userid)
        )
    )


def takeover_choices(session: Session, workspace_id: int, channel_id: int) -> list[Staff]:
    """The corp's active staff, by name: who may take customers over."""
    return list(
        session.scalars(
            select(Staff)
            .where(
                Staff.workspace_id == workspace_id,
                Staff.channel_id == channel_id,
                Staff.active.is_(True),
            )
            .order_by(Staff.name, Staff.userid)
        )
    )


def unassigned_customers(client, handover_userid: str | None = None) -> list[dict]:
    """Departed members' customers not handed over yet (get_unassigned_list, every page):
    [{handover_userid, external_userid, dimission_time}], only `handover_userid`'s if given."""
    rows: list[dict] = []
    cursor = ""
    while True:
        answer = client.post(
            "externalcontact/get_unassigned_list",
            data={"cursor": cursor, "page_size": UNASSIGNED_PAGE_SIZE},
        )
        rows.extend(
            row
            for row in answer.get("info") or []
            if handover_userid is None or row.get("handover_userid") == handover_userid
        )
        cursor = answer.get("next_cursor") or ""
        if answer.get("is_last", not cursor) or not cursor:
            return rows


# ---- sending ------------------------------------------------------------------------------


def send_transfer(session: Session, transfer: Transfer, client, now: datetime | None = None):
    """Hand the transfer's queued customers to WeCom, 100 a call; commits after each. Items
    left `sending` by a crash are looked up first. A transient error before the call went
    out puts the chunk back in the queue and is raised (the job is retried); one whose
    call may have gone out leaves it `sending`, to be looked up, and is raised too."""
    now = now or utcnow()
    send_endpoint, _ = ENDPOINTS[TransferKind(transfer.kind)]
    _look_up_sending(session, transfer, client, now)
    while True:
        batch = list(
            session.scalars(
                select(TransferItem)
                .where(
                    TransferItem.transfer_id == transfer.id,
                    TransferItem.workspace_id == transfer.workspace_id,
                    TransferItem.status == TransferItemStatus.QUEUED,
                )
                .order_by(TransferItem.id)
                .limit(CUSTOMERS_PER_CALL)
                .with_for_update(skip_locked=True)
            )
        )
        if not batch:
            break
        key = f"{transfer.id}:{batch[0].id}"
        for item in batch:
            item.status, item.call_key, item.sent_at = TransferItemStatus.SENDING, key, utcnow()
        session.commit()  # the idempotency key, before the call
        data = {
            "handover_userid": transfer.handover_userid,
            "takeover_userid": transfer.takeover_userid,
            "external_userid": [item.external_userid for item in batch],
        }
        if transfer.kind == TransferKind.IN_SERVICE and transfer.message:
            data["transfer_success_msg"] = transfer.message
        try:
            answer = client.post(send_endpoint, data=data)
        except WeChatApiError as exc:
            if may_have_gone_out(exc):
                log.warning(
                    "transfer %s call %s unanswered, to be looked up: %s", transfer.id, key, exc
                )
                raise
            if is_transient(exc):
                for item in batch:
                    item.status, item.call_key, item.sent_at = TransferItemStatus.QUEUED, None, None
                session.commit()
                raise
            for item in batch:
                _final(item, TransferItemStatus.FAILED, exc.errcode, str(exc))
            session.commit()
            log.warning("transfer %s call %s refused: %s", transfer.id, key, exc)
            continue
        answered = {
            row.get("external_userid"): int(row.get("errcode") or 0)
            for row in answer.get("customer") or []
        }
        for item in batch:
            errcode = answered.get(item.external_userid)
            if errcode == 0:
                item.status = TransferItemStatus.WAITING
            elif errcode is None:
                _final(
                    item, TransferItemStatus.FAILED, None, "WeCom did not answer for this customer"
                )
            else:
                status = (
                    TransferItemStatus.LIMIT
                    if errcode == TAKEOVER_FULL
                    else TransferItemStatus.FAILED
                )
                _final(item, status, errcode, ERRCODE_REASONS.get(errcode, "refused by WeCom"))
        _settle_accounts(session, transfer, {item.account_id for item in batch})
        session.commit()
    send_group_transfer(session, transfer, client)
    _finish(session, transfer)
    session.commit()


def _look_up_sending(session: Session, transfer: Transfer, client, now: datetime) -> None:
    """Items a crash left `sending`: WeCom's record decides; no record -> queued again."""
    stale_now = (
        TransferItem.status == TransferItemStatus.SENDING,
        TransferItem.sent_at < now - SENDING_GRACE,
    )
    if not _any_item(session, transfer, *stale_now):
        return
    results = transfer_results(transfer, client)
    stale = _lock_items(session, transfer, *stale_now)
    for item in stale:
        status, takeover_time = results.get(item.external_userid, (NO_RECORD, 0))
        if status in RESULT_STATUSES and _earlier_record(
            session, transfer, item, status, takeover_time
        ):
            status = NO_RECORD
        if status in RESULT_STATUSES:
            log.info(
                "transfer %s: %s was sent before a crash (status %s)",
                transfer.id,
                item.external_userid,
                status,
            )
            _apply_result(session, transfer, item, status, takeover_time)
        else:
            item.status, item.call_key, item.sent_at = TransferItemStatus.QUEUED, None, None
    _settle_accounts(session, transfer, {item.account_id for item in stale})
    session.commit()


def _earlier_record(
    session: Session, transfer: Transfer, item: TransferItem, status: int, takeover_time: int
) -> bool:
    """transfer_result gives the pair's latest record per customer: it is an earlier
    transfer's, not this call's, when it predates the item's send, or when an earlier item
    of the same pair and customer ended with it (or still waits on it)."""
    if status == DONE and takeover_time and _from_ts(takeover_time) < _aware(item.sent_at):
        return True
    return (
        session.scalar(
            select(TransferItem.id)
            .join(Transfer, Transfer.id == TransferItem.transfer_id)
            .where(
                TransferItem.workspace_id == transfer.workspace_id,
                TransferItem.channel_id == transfer.channel_id,
                TransferItem.external_userid == item.external_userid,
                TransferItem.id < item.id,
                TransferItem.status == RESULT_STATUSES[status],
                Transfer.workspace_id == transfer.workspace_id,
                Transfer.kind == transfer.kind,
                Transfer.handover_userid == transfer.handover_userid,
                Transfer.takeover_userid == transfer.takeover_userid,
            )
            .limit(1)
        )
        is not None
    )


def _any_item(session: Session, transfer: Transfer, *where) -> bool:
    return (
        session.scalar(
            select(TransferItem.id)
            .where(
                TransferItem.transfer_id == transfer.id,
                TransferItem.workspace_id == transfer.workspace_id,
                *where,
            )
            .limit(1)
        )
        is not None
    )


def _lock_items(session: Session, transfer: Transfer, *where) -> list[TransferItem]:
    """The transfer's items still matching, locked after WeCom answered (no lock is held
    during the call). The transfer's row first: two checks of it apply WeCom's answer one
    after the other, so the second finds the items the first settled no longer matching;
    an item the drain holds (a transfer_fail callback) is left to it."""
    session.execute(
        select(Transfer.id)
        .where(Transfer.id == transfer.id, Transfer.workspace_id == transfer.workspace_id)
        .with_for_update(key_share=True)
    )
    return list(
        session.scalars(
            select(TransferItem)
            .where(
                TransferItem.transfer_id == transfer.id,
                TransferItem.workspace_id == transfer.workspace_id,
                *where,
            )
            .order_by(TransferItem.id)
            .with_for_update(skip_locked=True)
            .execution_options(populate_existing=True)
        )
    )


def transfer_results(transfer: Transfer, client) -> dict[str, tuple[int, int]]:
    """external_userid -> (status, takeover_time) for the transfer's pair, every page."""
    _, result_endpoint = ENDPOINTS[TransferKind(transfer.kind)]
    results: dict[str, tuple[int, int]] = {}
    cursor = ""
    while True:
        answer = client.post(
            result_endpoint,
            data={
                "handover_userid": transfer.handover_userid,
                "takeover_userid": transfer.takeover_userid,
                "cursor": cursor,
            },
        )
        for row in answer.get("customer") or []:
            results[row["external_userid"]] = (
                int(row.get("status") or NO_RECORD),
                int(row.get("takeover_time") or 0),
            )
        cursor = answer.get("next_cursor") or ""
        if not cursor:
            return results


def check_transfer(session: Session, transfer: Transfer, client, now: datetime | None = None):
    """Each waiting customer's status as WeCom reports it now; commits. Done customers move."""
    now = now or utcnow()
    _look_up_sending(session, transfer, client, now)
    is_waiting = TransferItem.status == TransferItemStatus.WAITING
    if _any_item(session, transfer, is_waiting):
        results = transfer_results(transfer, client)
        waiting = _lock_items(session, transfer, is_waiting)
        for item in waiting:
            status, takeover_time = results.get(item.external_userid, (NO_RECORD, 0))
            if status in RESULT_STATUSES:
                _apply_result(session, transfer, item, status, takeover_time)
            else:
                _final(
                    item, TransferItemStatus.FAILED, None, "WeCom has no record of this transfer"
                )
        _settle_accounts(session, transfer, {item.account_id for item in waiting})
    _finish(session, transfer)
    session.commit()


def mark_failed_by_callback(
    session: Session,
    workspace_id: int,
    channel_id: int,
    takeover_userid: str | None,
    external_userid: str,
    reason: str | None,
) -> TransferItem | None:
    """A transfer_fail callback: the customer's open item toward that takeover is refused
    (or at the limit). Database only: called by the drain."""
    query = (
        select(TransferItem)
        .join(Transfer, Transfer.id == TransferItem.transfer_id)
        .where(
            TransferItem.workspace_id == workspace_id,
            TransferItem.channel_id == channel_id,
            TransferItem.external_userid == external_userid,
            TransferItem.status.in_((TransferItemStatus.WAITING, TransferItemStatus.SENDING)),
            Transfer.workspace_id == workspace_id,
        )
        .order_by(TransferItem.id.desc())
        .limit(1)
    )
    if takeover_userid:
        query = query.where(Transfer.takeover_userid == takeover_userid)
    item = session.scalar(query)
    if item is None:
        return None
    transfer = session.get(Transfer, item.transfer_id)
    status = FAIL_REASONS.get(reason or "", TransferItemStatus.REFUSED)
    _final(item, status, None, f"transfer_fail: {reason or 'customer_refused'}")
    _settle_accounts(session, transfer, {item.account_id})
    _finish(session, transfer)
    return item


def transfers_due(session: Session, now: datetime | None = None) -> tuple[list[int], list[int]]:
    """(transfers to check: waiting customers or stale sending ones; transfers whose send
    job was lost: customers still queued past the grace)."""
    now = now or utcnow()
    check = session.scalars(
        select(TransferItem.transfer_id)
        .where(
            (TransferItem.status == TransferItemStatus.WAITING)
            | (
                (TransferItem.status == TransferItemStatus.SENDING)
                & (TransferItem.sent_at < now - SENDING_GRACE)
            )
        )
        .distinct()
    )
    lost = session.scalars(
        select(TransferItem.transfer_id)
        .join(Transfer, Transfer.id == TransferItem.transfer_id)
        .where(
            TransferItem.status == TransferItemStatus.QUEUED,
            Transfer.created_at < now - QUEUED_GRACE,
        )
        .distinct()
    )
    return sorted(check), sorted(lost)


def status_counts(session: Session, workspace_id: int, transfer_ids: list[int]) -> dict:
    """transfer id -> Counter of its items' statuses."""
    counts: dict[int, Counter] = {transfer_id: Counter() for transfer_id in transfer_ids}
    for batch in chunks(transfer_ids, LOOKUP_CHUNK):
        rows = session.execute(
            select(TransferItem.transfer_id, TransferItem.status).where(
                TransferItem.workspace_id == workspace_id, TransferItem.transfer_id.in_(batch)
            )
        )
        for transfer_id, status in rows:
            counts[transfer_id][status] += 1
    return counts


# ---- outcomes -----------------------------------------------------------------------------


def _apply_result(
    session: Session, transfer: Transfer, item: TransferItem, status: int, takeover_time: int
) -> None:
    if status == DONE:
        _complete(session, transfer, item, _from_ts(takeover_time) if takeover_time else utcnow())
    elif status == WAITING:
        item.status = TransferItemStatus.WAITING
    elif status == REFUSED:
        _final(item, TransferItemStatus.REFUSED, None, "the customer refused")
    elif status == LIMIT:
        _final(item, TransferItemStatus.LIMIT, None, ERRCODE_REASONS[TAKEOVER_FULL])


def _complete(session: Session, transfer: Transfer, item: TransferItem, at: datetime) -> None:
    """The takeover is done: the relation moves and the contact's open tasks follow. Once."""
    if item.status == TransferItemStatus.DONE:
        return
    _final(item, TransferItemStatus.DONE, None, None)
    item.finished_at = at
    old = _relations(session, transfer.channel_id, transfer.handover_userid, [item.external_userid])
    relation = old.get(item.external_userid)
    if relation is not None and relation.removed_at is None:
        relation.removed_at, relation.removed_by = at, "transfer"
    contact_id = item.contact_id or (relation.contact_id if relation else None)
    if contact_id is None:
        return
    new = _relations(session, transfer.channel_id, transfer.takeover_userid, [item.external_userid])
    taken = new.get(item.external_userid)
    if taken is None:
        taken = FollowRelation(
            workspace_id=transfer.workspace_id,
            channel_id=transfer.channel_id,
            contact_id=contact_id,
            external_userid=item.external_userid,
            staff_userid=transfer.takeover_userid,
            state=relation.state if relation else None,
            add_way=relation.add_way if relation else None,
            contact_way_id=relation.contact_way_id if relation else None,
            added_at=at,
        )
        session.add(taken)
    elif taken.removed_at is not None or taken.added_at is None:
        taken.added_at, taken.removed_at, taken.removed_by = at, None, None
    handover_user = _user_of(session, transfer, transfer.handover_userid)
    takeover_user = _user_of(session, transfer, transfer.takeover_userid)
    if handover_user is not None and takeover_user is not None and handover_user != takeover_user:
        session.execute(
            update(Task)
            .where(
                Task.workspace_id == transfer.workspace_id,
                Task.contact_id == contact_id,
                Task.status == TaskStatus.OPEN,
                Task.assignee_id == handover_user,
            )
            .values(assignee_id=takeover_user)
        )


def _settle_accounts(session: Session, transfer: Transfer, account_ids: set) -> None:
    """Accounts all of whose customers in the transfer are settled: the timeline says so,
    and the owner follows where the whole account moved."""
    session.flush()
    for account_id in sorted(a for a in account_ids if a is not None):
        statuses = Counter(
            session.scalars(
                select(TransferItem.status).where(
                    TransferItem.transfer_id == transfer.id,
                    TransferItem.workspace_id == transfer.workspace_id,
                    TransferItem.account_id == account_id,
                )
            )
        )
        if any(status in OPEN_STATUSES for status in statuses):
            continue
        account = session.scalar(
            select(Account).where(
                Account.id == account_id, Account.workspace_id == transfer.workspace_id
            )
        )
        if account is None:
            continue
        done = statuses[TransferItemStatus.DONE]
        names = _names(session, transfer)
        record_account_event(
            session,
            workspace_id=transfer.workspace_id,
            account_id=account.id,
            kind=AccountEventKind.TRANSFER,
            user_id=transfer.created_by,
            text=(
                f"客户继承：{names[0]} → {names[1]}，{done} 位客户已接替"
                + (
                    f"，{sum(statuses.values()) - done} 位未成功"
                    if sum(statuses.values()) > done
                    else ""
                )
            ),
            data={"transfer_id": transfer.id, "statuses": dict(statuses)},
        )
        if done:
            _follow_owner(session, transfer, account, names)


def _follow_owner(session: Session, transfer: Transfer, account: Account, names) -> None:
    """The takeover's user owns the account once the handover has none of its customers
    left, if the handover's user owned it or nobody did."""
    takeover_user = _user_of(session, transfer, transfer.takeover_userid)
    handover_user = _user_of(session, transfer, transfer.handover_userid)
    if takeover_user is None or account.owner_id == takeover_user:
        return
    if account.owner_id is not None and account.owner_id != handover_user:
        return
    left = account_customers(
        session, transfer.workspace_id, transfer.channel_id, transfer.handover_userid, account.id
    )
    if left:
        return
    before = account.owner_id
    account.owner_id = takeover_user
    record_account_event(
        session,
        workspace_id=transfer.workspace_id,
        account_id=account.id,
        kind=AccountEventKind.OWNER_CHANGED,
        user_id=transfer.created_by,
        text=f"负责人因客户继承由 {names[0]} 变为 {names[1]}",
        data={"transfer_id": transfer.id, "from": before, "to": takeover_user},
    )


def _finish(session: Session, transfer: Transfer) -> None:
    session.flush()
    open_left = session.scalar(
        select(TransferItem.id)
        .where(
            TransferItem.transfer_id == transfer.id,
            TransferItem.workspace_id == transfer.workspace_id,
            TransferItem.status.in_(OPEN_STATUSES),
        )
        .limit(1)
    )
    if open_left is None and transfer.finished_at is None:
        transfer.finished_at = utcnow()


def _final(item: TransferItem, status: TransferItemStatus, errcode: int | None, error):
    assert status in FINAL_ITEM_STATUSES
    item.status, item.errcode = status, errcode
    item.error = error[:500] if error else None
    item.finished_at = utcnow()


# ---- lookups --------------------------------------------------------------------------------


def _staff(session: Session, workspace_id: int, channel_id: int, userid: str) -> Staff | None:
    return session.scalar(
        select(Staff).where(
            Staff.workspace_id == workspace_id,
            Staff.channel_id == channel_id,
            Staff.userid == userid,
        )
    )


def _user_of(session: Session, transfer: Transfer, userid: str) -> int | None:
    staff = _staff(session, transfer.workspace_id, transfer.channel_id, userid)
    return staff.user_id if staff else None


def _names(session: Session, transfer: Transfer) -> tuple[str, str]:
    def name(userid: str) -> str:
        staff = _staff(session, transfer.workspace_id, transfer.channel_id, userid)
        return (staff.name if staff else "") or userid

    return name(transfer.handover_userid), name(transfer.takeover_userid)


def _relations(
    session: Session, channel_id: int, staff_userid: str, external_userids: list[str]
) -> dict[str, FollowRelation]:
    found: dict[str, FollowRelation] = {}
    for batch in chunks(external_userids, LOOKUP_CHUNK):
        for relation in session.scalars(
            select(FollowRelation).where(
                FollowRelation.channel_id == channel_id,
                FollowRelation.staff_userid == staff_userid,
                FollowRelation.external_userid.in_(batch),
            )
        ):
            found[relation.external_userid] = relation
    return found


def _in_open_transfers(session: Session, channel_id: int, external_userids: list[str]) -> set:
    busy: set[str] = set()
    for batch in chunks(external_userids, LOOKUP_CHUNK):
        busy.update(
            session.scalars(
                select(TransferItem.external_userid).where(
                    TransferItem.channel_id == channel_id,
                    TransferItem.external_userid.in_(batch),
                    TransferItem.status.in_(OPEN_STATUSES),
                )
            )
        )
    return busy


def _contacts(
    session: Session,
    workspace_id: int,
    channel_id: int,
    external_userids: list[str],
    relations: dict[str, FollowRelation],
) -> dict[str, tuple[int, int | None]]:
    """external_userid -> (contact id, account id): through the relation, else the identity."""
    contact_ids = {ext: r.contact_id for ext, r in relations.items()}
    missing = [ext for ext in external_userids if ext not in contact_ids]
    for batch in chunks(missing, LOOKUP_CHUNK):
        for value, contact_id in session.execute(
            select(Identity.value, Identity.contact_id).where(
                Identity.workspace_id == workspace_id,
                Identity.kind == IdentityKind.EXTERNAL_USERID,
                Identity.channel_id == channel_id,
                Identity.value.in_(batch),
            )
        ):
            contact_ids[value] = contact_id
    accounts: dict[int, int | None] = {}
    ids = list(set(contact_ids.values()))
    for batch in chunks(ids, LOOKUP_CHUNK):
        for contact_id, account_id in session.execute(
            select(Contact.id, Contact.account_id).where(
                Contact.workspace_id == workspace_id, Contact.id.in_(batch)
            )
        ):
            accounts[contact_id] = account_id
    return {
        ext: (contact_id, accounts.get(contact_id))
        for ext, contact_id in contact_ids.items()
        if contact_id in accounts
    }


def _from_ts(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)
