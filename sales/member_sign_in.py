"""Who a WeCom member is in Harpoon: the admin user their Staff row maps to.

A member whose sign-in finds no active user (not a member at all, no Staff row, a Staff
row the sync turned inactive, no mapping, a deactivated user) is recorded as a refused
sign-in, counted per channel and member, with an audit entry; the admin's Staff page
lists them until they are mapped or sign in.

An owner or admin never signs in through WeCom: the member's link to a user can be set
by a marketer, and a password-free sign-in would hand that member the owner's role.
They are refused (PASSWORD_ONLY) and sign in with their password.
"""

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import (
    PASSWORD_ONLY_ROLES,
    AuditLog,
    Channel,
    RefusedSignIn,
    SignInRefusal,
    Staff,
    User,
    utcnow,
)


@dataclass(frozen=True)
class SignInOutcome:
    user: User | None
    refusal: SignInRefusal | None
    staff: Staff | None


def user_for_member(session: Session, channel: Channel, userid: str) -> SignInOutcome:
    """The active admin user a member of the channel's corp signs in as, or why none."""
    if not userid:
        return SignInOutcome(None, SignInRefusal.NOT_MEMBER, None)
    staff = session.scalar(
        select(Staff).where(
            Staff.workspace_id == channel.workspace_id,
            Staff.channel_id == channel.id,
            Staff.userid == userid,
        )
    )
    if staff is None:
        return SignInOutcome(None, SignInRefusal.NO_STAFF, None)
    if not staff.active:  # the customer-contact permission was taken away
        return SignInOutcome(None, SignInRefusal.INACTIVE_STAFF, staff)
    if staff.user_id is None:
        return SignInOutcome(None, SignInRefusal.NO_USER, staff)
    user = session.scalar(
        select(User).where(User.id == staff.user_id, User.workspace_id == channel.workspace_id)
    )
    if user is None or not user.active:
        return SignInOutcome(None, SignInRefusal.INACTIVE_USER, staff)
    if user.role in PASSWORD_ONLY_ROLES:
        return SignInOutcome(None, SignInRefusal.PASSWORD_ONLY, staff)
    return SignInOutcome(user, None, staff)


def record_refused(
    session: Session, channel: Channel, member: str, refusal: SignInRefusal, address: str
) -> None:
    """Count the refusal for the admin (one row per member, however often they try) and
    audit it. The caller commits."""
    now = utcnow()
    where = (
        RefusedSignIn.workspace_id == channel.workspace_id,
        RefusedSignIn.channel_id == channel.id,
        RefusedSignIn.member == member,
    )
    row = session.scalar(select(RefusedSignIn).where(*where).with_for_update())
    if row is None:
        try:
            with session.begin_nested():
                session.add(
                    RefusedSignIn(
                        workspace_id=channel.workspace_id,
                        channel_id=channel.id,
                        member=member,
                        reason=refusal,
                        first_at=now,
                        last_at=now,
                    )
                )
        except IntegrityError:  # the same member, at the same moment, in another process
            row = session.scalar(select(RefusedSignIn).where(*where).with_for_update())
    if row is not None:
        row.attempts += 1
        row.reason = refusal
        row.last_at = now
    session.add(
        AuditLog(
            workspace_id=channel.workspace_id,
            user_id=None,
            action="wecom.sign_in_refused",
            target_type="channel",
            target_id=str(channel.id),
            changes={"member": member, "reason": str(refusal), "ip": address},
        )
    )


def forget_refused(session: Session, workspace_id: int, channel_id: int, member: str) -> None:
    """The member signed in or was mapped: nothing left for the admin to do."""
    session.execute(
        delete(RefusedSignIn).where(
            RefusedSignIn.workspace_id == workspace_id,
            RefusedSignIn.channel_id == channel_id,
            RefusedSignIn.member == member,
        )
    )


def refused_sign_ins(session: Session, workspace_id: int) -> list[tuple[RefusedSignIn, Staff]]:
    """The workspace's refused sign-ins, latest first, with the member's Staff row if any."""
    rows = session.execute(
        select(RefusedSignIn, Staff)
        .outerjoin(
            Staff,
            (Staff.channel_id == RefusedSignIn.channel_id)
            & (Staff.userid == RefusedSignIn.member)
            & (Staff.workspace_id == workspace_id),
        )
        .where(RefusedSignIn.workspace_id == workspace_id)
        .order_by(RefusedSignIn.last_at.desc())
    )
    return [(refused, staff) for refused, staff in rows]
