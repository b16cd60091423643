"""A WeCom corp's salespeople: who has the customer-contact permission, and which admin
user each one is, so their accounts and customers meet on one page."""

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Account, Channel, Staff, User, utcnow
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

MAX_NAME = Staff.__table__.c.name.type.length
MAX_EMAIL = Staff.__table__.c.email.type.length


@dataclass
class StaffSyncResult:
    added: int = 0
    updated: int = 0
    deactivated: int = 0
    mapped: int = 0
    # Members WeCom would not describe (user/get refused): kept under their userid.
    undescribed: int = 0


def sync_staff(session: Session, channel: Channel, client) -> StaffSyncResult:
    """Mirror the corp's members with the customer-contact permission into Staff rows.

    Members no longer listed stay (their customers' history names them) but turn
    inactive; a member whose email matches an admin user of the workspace is mapped to
    that user, unless someone already mapped them by hand.
    """
    result = StaffSyncResult()
    # WeCom first, the database after: the rows are written in one short stretch.
    userids = list(dict.fromkeys(client.external_contact.get_follow_user_list()["follow_user"]))
    profiles = {userid: _profile(client, userid) for userid in userids}
    now = utcnow()
    known = {
        staff.userid: staff
        for staff in session.scalars(select(Staff).where(Staff.channel_id == channel.id))
    }
    users_by_email = _active_users_by_email(session, channel.workspace_id)
    for userid, profile in profiles.items():
        staff = known.get(userid)
        if staff is None:
            staff = Staff(workspace_id=channel.workspace_id, channel_id=channel.id, userid=userid)
            session.add(staff)
            result.added += 1
        else:
            result.updated += 1
        if profile is None:
            result.undescribed += 1
            staff.name = staff.name or userid
        else:
            staff.name = (profile.get("name") or userid)[:MAX_NAME]
            staff.email = (profile.get("email") or "").strip()[:MAX_EMAIL] or staff.email
        staff.active = True
        staff.synced_at = now
        if staff.user_id is None and staff.email:
            user_id = users_by_email.get(staff.email.casefold())
            if user_id is not None:
                staff.user_id = user_id
                result.mapped += 1
    listed = set(userids)
    for userid, staff in known.items():
        if userid not in listed and staff.active:
            staff.active = False
            staff.synced_at = now
            result.deactivated += 1
    session.commit()
    return result


def _profile(client, userid: str) -> dict | None:
    """user/get for one member; None when WeCom refuses it (e.g. outside the app's
    visibility), so one such member does not stop the others' sync."""
    try:
        return client.user.get(userid)
    except WeChatApiError as exc:
        if exc.errcode is None:  # the network, not WeCom: let the job retry
            raise
        log.warning("user/get %s refused: %s", userid, exc)
        return None


def _active_users_by_email(session: Session, workspace_id: int) -> dict[str, int]:
    rows = session.execute(
        select(User.email, User.id)
        .where(User.workspace_id == workspace_id, User.active.is_(True))
        .order_by(User.id)
    )
    by_email: dict[str, int] = {}
    for email, user_id in rows:
        by_email.setdefault(email.casefold(), user_id)
    return by_email


def staff_accounts(session: Session, staff: Staff) -> list[Account]:
    """The accounts the salesperson owns, through the admin user they are mapped to."""
    if staff.user_id is None:
        return []
    return list(
        session.scalars(
            select(Account)
            .where(Account.workspace_id == staff.workspace_id, Account.owner_id == staff.user_id)
            .order_by(Account.name, Account.id)
        )
    )
