"""Sales alerts: the notes Harpoon sent (or will send) to salespeople as WeCom app messages."""

from math import ceil

from flask import render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import aliased

from app.admin import bp, db
from app.admin.access import can, requires, workspace_id
from app.admin.labels import NOTIFICATION_KIND_LABELS
from app.admin.tasks.forms import DigestForm
from models import Channel, NotificationStatus, Role, Staff, StaffNotification, Workspace

PAGE_SIZE = 50
STATUS_LABELS = {
    NotificationStatus.PENDING: _l("Pending"),
    NotificationStatus.HELD: _l("Held for tomorrow (daily cap)"),
    NotificationStatus.SENT: _l("Sent"),
    NotificationStatus.FAILED: _l("Failed"),
}
STATUS_BADGES = {
    NotificationStatus.PENDING: "warn",
    NotificationStatus.HELD: "warn",
    NotificationStatus.SENT: "ok",
    NotificationStatus.FAILED: "error",
}


@bp.get("/notifications")
@requires("contacts.view")
def notifications():
    ws = workspace_id()
    staff_members = (
        db()
        .execute(
            select(Staff, Channel.name)
            .join(Channel, Channel.id == Staff.channel_id)
            .where(Staff.workspace_id == ws)
            .order_by(Channel.name, Staff.name, Staff.userid)
        )
        .all()
    )
    own_only = current_user.role == Role.SALES
    if own_only:
        staff_members = [row for row in staff_members if row[0].user_id == current_user.id]
    staff_id = request.args.get("staff", type=int)
    chosen = next((staff for staff, _name in staff_members if staff.id == staff_id), None)
    status = request.args.get("status", "")
    conditions = [StaffNotification.workspace_id == ws]
    if own_only:
        conditions.append(_own_alerts(ws, current_user.id))
    if chosen is not None:
        conditions += [
            StaffNotification.channel_id == chosen.channel_id,
            StaffNotification.staff_userid == chosen.userid,
        ]
    if status in STATUS_LABELS:
        conditions.append(StaffNotification.status == status)
    else:
        status = ""
    total = db().scalar(select(func.count()).where(*conditions))
    pages = max(1, ceil(total / PAGE_SIZE))
    page = min(max(request.args.get("page", 1, type=int), 1), pages)
    rows = (
        db()
        .execute(
            select(StaffNotification, Staff.name)
            .outerjoin(
                Staff,
                and_(
                    Staff.channel_id == StaffNotification.channel_id,
                    Staff.userid == StaffNotification.staff_userid,
                ),
            )
            .where(*conditions)
            .order_by(StaffNotification.created_at.desc(), StaffNotification.id.desc())
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        )
        .all()
    )
    msgids = {notification.msgid for notification, _name in rows if notification.msgid}
    # Notes sharing a msgid went out as one digest message.
    digest_sizes = dict(
        db()
        .execute(
            select(StaffNotification.msgid, func.count())
            .where(StaffNotification.workspace_id == ws, StaffNotification.msgid.in_(msgids))
            .group_by(StaffNotification.msgid)
        )
        .all()
    )
    return render_template(
        "admin/notifications.html",
        rows=rows,
        kind_labels=NOTIFICATION_KIND_LABELS,
        digest_sizes=digest_sizes,
        staff_members=staff_members,
        staff_id=chosen.id if chosen else None,
        status=status,
        page=page,
        pages=pages,
        total=total,
        status_labels=STATUS_LABELS,
        status_badges=STATUS_BADGES,
        digest_form=DigestForm(formdata=None, obj=db().get(Workspace, ws))
        if can("wecom.manage")
        else None,
    )


def _own_alerts(workspace_id: int, user_id: int):
    """A salesperson's alerts: those to any staff identity mapped to them (departed ones
    too). Its own alias of Staff: the page joins staff for their names."""
    staff = aliased(Staff)
    return exists().where(
        staff.workspace_id == workspace_id,
        staff.channel_id == StaffNotification.channel_id,
        staff.userid == StaffNotification.staff_userid,
        staff.user_id == user_id,
    )
