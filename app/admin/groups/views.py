"""The customer group pages' routes."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from app.admin import bp, db
from app.admin.access import requires, workspace_id
from app.admin.accounts.presenters import interaction_rows
from app.admin.contacts.presenters import INTERACTION_LABELS
from app.admin.groups.presenters import departed, members_by_account
from app.admin.labels import CONTACT_ROLE_LABELS, JOIN_SCENES, QUIT_SCENES
from app.admin.lookups import id_arg, paginate, scoped_or_404
from app.extensions import harpoon
from core.jobs import Job
from models import Account, Channel, ChannelKind, CustomerGroup
from sales.groups import (
    account_groups,
    accounts_represented,
    group_activity,
    group_members,
    group_owners,
    groups_query,
)
from sales.staff import staff_names

PAGE_SIZE = 50
ACTIVITY_SHOWN = 50
IS_WECOM = Channel.kind == ChannelKind.WECOM


@bp.get("/groups")
@requires("contacts.view")
def groups():
    ws = workspace_id()
    owner = (request.args.get("owner") or "").strip()[:64] or None
    account_id = id_arg("account_id", Account.id)
    account = scoped_or_404(Account, account_id) if account_id is not None else None
    listed = paginate(groups_query(ws, owner_userid=owner, account_id=account_id), PAGE_SIZE)
    group_ids = [group.id for (group,) in listed.rows]
    channels = (
        db()
        .scalars(select(Channel).where(Channel.workspace_id == ws, IS_WECOM).order_by(Channel.id))
        .all()
    )
    filters = {k: v for k, v in (("owner", owner), ("account_id", account_id)) if v}
    return render_template(
        "admin/groups.html",
        rows=[group for (group,) in listed.rows],
        accounts=accounts_represented(db(), ws, group_ids),
        names=staff_names(db(), ws),
        owners=group_owners(db(), ws),
        owner=owner,
        account=account,
        channels=channels,
        filters=filters,
        page=listed.page,
        pages=listed.pages,
        total=listed.total,
    )


@bp.get("/groups/<int:group_id>")
@requires("contacts.view")
def groups_detail(group_id: int):
    group = scoped_or_404(CustomerGroup, group_id)
    rows = group_members(db(), group)
    return render_template(
        "admin/group.html",
        group=group,
        sections=members_by_account(rows),
        departed=departed(rows),
        names=staff_names(db(), group.workspace_id),
        activity=interaction_rows(
            [(i, name, None) for i, name in group_activity(db(), group, ACTIVITY_SHOWN)]
        ),
        interaction_labels=INTERACTION_LABELS,
        role_labels=CONTACT_ROLE_LABELS,
        join_scenes=JOIN_SCENES,
        quit_scenes=QUIT_SCENES,
    )


@bp.post("/groups/sync/<int:channel_id>")
@requires("wecom.manage")
def groups_sync(channel_id: int):
    channel = scoped_or_404(Channel, channel_id, IS_WECOM)
    harpoon().queue.enqueue_followups({(Job.SYNC_CUSTOMER_GROUPS, channel.id)})
    flash(
        _(
            "Syncing the customer groups of %(name)s: reload the page in a moment.",
            name=channel.name,
        ),
        "success",
    )
    return redirect(url_for("admin.groups"))


@bp.app_template_global("account_customer_groups")
def account_customer_groups(account_id: int) -> list:
    """(group, how many of the account's people are in it) for the account's page."""
    if not isinstance(account_id, int):
        abort(404)
    return account_groups(db(), workspace_id(), account_id)
