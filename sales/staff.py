"""A WeCom corp's salespeople: who has the customer-contact permission, and which admin
user each one is, so their accounts and customers meet on one page."""

import logging
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, aliased

from models import (
    PASSWORD_ONLY_ROLES,
    Account,
    Channel,
    Contact,
    ContactWay,
    FollowRelation,
    Staff,
    User,
    utcnow,
)
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
    that user, unless someone already mapped them by hand. Owners and admins are never
    linked by email (a WeCom profile's email is the corp's to set): only by hand.
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
    """The users a member may be linked to by email: active, not an owner or admin."""
    rows = session.execute(
        select(User.email, User.id)
        .where(
            User.workspace_id == workspace_id,
            User.active.is_(True),
            User.role.not_in(PASSWORD_ONLY_ROLES),
        )
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


def contact_relations(session: Session, workspace_id: int, contact_id: int) -> list:
    """A contact's WeCom relations across staff: (relation, staff name, 联系我 code name),
    the latest added first."""
    return session.execute(
        select(FollowRelation, Staff.name, ContactWay.name)
        .outerjoin(
            Staff,
            (Staff.channel_id == FollowRelation.channel_id)
            & (Staff.userid == FollowRelation.staff_userid),
        )
        .outerjoin(ContactWay, ContactWay.id == FollowRelation.contact_way_id)
        .where(
            FollowRelation.contact_id == contact_id,
            FollowRelation.workspace_id == workspace_id,
        )
        .order_by(FollowRelation.added_at.desc(), FollowRelation.id.desc())
    ).all()


# ---- the staff pages --------------------------------------------------------------------


def staff_names(session: Session, workspace_id: int) -> dict[tuple[int, str], str | None]:
    """(channel id, userid) -> the staff member's name."""
    rows = session.execute(
        select(Staff.channel_id, Staff.userid, Staff.name).where(Staff.workspace_id == workspace_id)
    )
    return {(channel_id, userid): name for channel_id, userid, name in rows}


def staff_with_users(session: Session, workspace_id: int) -> list:
    """(staff member, their admin user's name or None): the active first, by name."""
    return session.execute(
        select(Staff, User.name)
        .outerjoin(User, (User.id == Staff.user_id) & (User.workspace_id == workspace_id))
        .where(Staff.workspace_id == workspace_id)
        .order_by(Staff.active.desc(), Staff.name, Staff.userid)
    ).all()


def _counts_by_staff(session: Session, workspace_id: int, *conditions) -> dict:
    rows = session.execute(
        select(FollowRelation.channel_id, FollowRelation.staff_userid, func.count())
        .where(FollowRelation.workspace_id == workspace_id, *conditions)
        .group_by(FollowRelation.channel_id, FollowRelation.staff_userid)
    )
    return {(channel_id, userid): count for channel_id, userid, count in rows}


def customer_counts(session: Session, workspace_id: int) -> dict[tuple[int, str], int]:
    """(channel id, userid) -> the customers the staff member has now."""
    return _counts_by_staff(session, workspace_id, FollowRelation.removed_at.is_(None))


def lost_counts(session: Session, workspace_id: int) -> dict[tuple[int, str], int]:
    """(channel id, userid) -> the customers who removed the staff member."""
    return _counts_by_staff(session, workspace_id, FollowRelation.removed_by == "customer")


def mappable_users(session: Session, workspace_id: int) -> list:
    """(id, name, email) of the active users, and of deactivated ones some staff member is
    still mapped to; by name."""
    mapped = select(Staff.user_id).where(
        Staff.workspace_id == workspace_id, Staff.user_id.is_not(None)
    )
    return session.execute(
        select(User.id, User.name, User.email)
        .where(User.workspace_id == workspace_id, User.active.is_(True) | User.id.in_(mapped))
        .order_by(User.name, User.id)
    ).all()


def customers_query(staff: Staff) -> Select:
    """The staff member's customers, present and past: (relation, contact, account or None,
    联系我 code name or None), the latest added first."""
    ws = staff.workspace_id
    customer_account = aliased(Account)
    return (
        select(FollowRelation, Contact, customer_account, ContactWay.name)
        .join(Contact, (Contact.id == FollowRelation.contact_id) & (Contact.workspace_id == ws))
        .outerjoin(
            customer_account,
            (customer_account.id == Contact.account_id) & (customer_account.workspace_id == ws),
        )
        .outerjoin(ContactWay, ContactWay.id == FollowRelation.contact_way_id)
        .where(
            FollowRelation.workspace_id == ws,
            FollowRelation.channel_id == staff.channel_id,
            FollowRelation.staff_userid == staff.userid,
        )
        .order_by(FollowRelation.added_at.desc().nulls_last(), FollowRelation.id.desc())
    )


def staff_of_user(
    session: Session, workspace_id: int, channel_id: int, user_id: int
) -> Staff | None:
    """A signed-in user's active staff identity on a corp (what their share tokens name)."""
    return session.scalar(
        select(Staff)
        .where(
            Staff.workspace_id == workspace_id,
            Staff.channel_id == channel_id,
            Staff.user_id == user_id,
            Staff.active.is_(True),
        )
        .order_by(Staff.id)
    )


def corps_of_user(session: Session, workspace_id: int, user_id: int) -> list[int]:
    """The corps (channel ids) where a user sells as an active staff member."""
    return list(
        session.scalars(
            select(Staff.channel_id)
            .where(
                Staff.workspace_id == workspace_id,
                Staff.user_id == user_id,
                Staff.active.is_(True),
            )
            .distinct()
            .order_by(Staff.channel_id)
        )
    )
