"""The transfer pages' routes: the list, starting one (from a staff member, an account or a
departed member), confirming it, and each customer's status to the end."""

import logging

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from marshmallow import ValidationError as SchemaError
from redis.exceptions import RedisError

from app.admin import bp, db
from app.admin.access import audit, can, requires, workspace_id
from app.admin.labels import error_messages
from app.admin.lookups import paginate, scoped_or_404
from app.admin.transfers.forms import ACCOUNT, ALL, CHOSEN, TransferForm, staff_choices
from app.admin.transfers.presenters import group_rows, item_error, labels, summary
from app.extensions import harpoon
from core.jobs import Job
from models import Account, Channel, Staff, Transfer, TransferKind, User
from sales.group_transfers import group_items
from sales.staff import customer_counts, staff_names
from sales.transfers import (
    account_customers,
    create_transfer,
    current_customers,
    staff_accounts_with_customers,
    staff_members,
    status_counts,
    takeover_choices,
    transfer_items_query,
    transfers_query,
    unassigned_customers,
)
from wechat.clients import WeChatApiError

log = logging.getLogger(__name__)

PAGE_SIZE = 50
ITEMS_PAGE_SIZE = 100
# Where each of create_transfer's error keys shows on the form.
ERROR_FIELDS = {
    "channel_id": "takeover",
    "handover_userid": "takeover",
    "takeover_userid": "takeover",
    "account_id": "account",
    "external_userids": "customers",
    "message": "message",
}


@bp.get("/transfers")
@requires("transfers.manage")
def transfers():
    ws = workspace_id()
    listed = paginate(transfers_query(ws), PAGE_SIZE)
    counts = status_counts(db(), ws, [transfer.id for transfer, _name in listed.rows])
    customers = customer_counts(db(), ws)
    members = staff_members(db(), ws)
    return render_template(
        "admin/transfers.html",
        rows=[(t, name, summary(counts[t.id])) for t, name in listed.rows],
        names=_names(ws),
        active=[(m, customers.get((m.channel_id, m.userid), 0)) for m in members if m.active],
        departed=[(m, customers.get((m.channel_id, m.userid), 0)) for m in members if not m.active],
        page=listed.page,
        pages=listed.pages,
        **labels(),
    )


@bp.route("/transfers/new/<int:staff_id>", methods=["GET", "POST"])
@requires("transfers.manage")
def transfers_new(staff_id: int):
    handover = scoped_or_404(Staff, staff_id)
    kind = TransferKind.IN_SERVICE if handover.active else TransferKind.DEPARTED
    form = TransferForm()
    ws = workspace_id()
    colleagues = takeover_choices(db(), ws, handover.channel_id)
    form.takeover.choices = staff_choices(colleagues, handover.id)
    customers, wecom_error = _customers(handover, kind)
    accounts = {}
    for _ext, _contact, account in customers:
        if account is not None:
            accounts.setdefault(account.id, [account, 0])[1] += 1
    form.account.choices = [("", _("Choose the account"))] + [
        (str(account.id), f"{account.name} ({count})") for account, count in accounts.values()
    ]
    form.customers.choices = [
        (ext, _customer_label(ext, contact, account)) for ext, contact, account in customers
    ]
    if request.method == "GET":
        preset = request.args.get("account_id", type=int)
        if preset in accounts:
            form.scope.data, form.account.data = ACCOUNT, preset
        return _form_page(handover, kind, form, customers, wecom_error)
    if not form.validate_on_submit():
        return _form_page(handover, kind, form, customers, wecom_error), 400
    takeover = next(
        (m for m in colleagues if m.id == form.takeover.data and m.id != handover.id), None
    )
    if takeover is None:
        form.takeover.errors.append(_("Not an active staff member of this corp."))
        return _form_page(handover, kind, form, customers, wecom_error), 400
    offered = [ext for ext, _contact, _account in customers]
    if form.scope.data == ACCOUNT:
        if form.account.data not in accounts:
            form.account.errors.append(_("Not an account of this workspace with their customers."))
            return _form_page(handover, kind, form, customers, wecom_error), 400
        of_account = set(
            account_customers(db(), ws, handover.channel_id, handover.userid, form.account.data)
        )
        chosen = [ext for ext in offered if ext in of_account]
    elif form.scope.data == CHOSEN:
        picked = set(form.customers.data)
        chosen = [ext for ext in offered if ext in picked]
    else:
        chosen = offered
    if not chosen:
        form.customers.errors.append(_("None of the chosen customers can be transferred."))
        return _form_page(handover, kind, form, customers, wecom_error), 400
    if form.confirmed.data != "yes":
        by_ext = {ext: (contact, account) for ext, contact, account in customers}
        return _form_page(
            handover,
            kind,
            form,
            customers,
            wecom_error,
            confirm={
                "takeover": takeover,
                "customers": [(ext, *by_ext[ext]) for ext in chosen],
            },
        )
    try:
        new = create_transfer(
            db(),
            ws,
            channel_id=handover.channel_id,
            handover_userid=handover.userid,
            takeover_userid=takeover.userid,
            kind=kind,
            external_userids=chosen,
            account_id=form.account.data if form.scope.data == ACCOUNT else None,
            message=form.message.data or "",
            created_by=current_user.id,
        )
    except SchemaError as exc:
        db().rollback()
        for key, messages in exc.messages.items():
            form[ERROR_FIELDS.get(key, "customers")].errors.extend(error_messages(messages))
        form.confirmed.data = ""
        return _form_page(handover, kind, form, customers, wecom_error), 400
    transfer = new.transfer
    audit(
        db(),
        "transfer.create",
        "transfer",
        transfer.id,
        {
            "kind": str(kind),
            "handover": handover.userid,
            "takeover": takeover.userid,
            "account_id": transfer.account_id,
            "customers": len(chosen) - len(new.not_customers) - len(new.in_transfer),
        },
    )
    db().commit()
    left_out = len(new.not_customers) + len(new.in_transfer)
    if left_out:
        flash(
            ngettext(
                "%(num)d customer was left out: no longer theirs, or in another transfer.",
                "%(num)d customers were left out: no longer theirs, or in another transfer.",
                left_out,
            ),
            "error",
        )
    if _enqueue(Job.SEND_TRANSFER, transfer.id):
        flash(_("The transfer is handed to WeCom: each customer's status shows below."), "success")
    else:
        flash(_("The job queue is unreachable: the transfer starts once it is back."), "error")
    return redirect(url_for("admin.transfers_detail", transfer_id=transfer.id))


@bp.get("/transfers/<int:transfer_id>")
@requires("transfers.manage")
def transfers_detail(transfer_id: int):
    transfer = scoped_or_404(Transfer, transfer_id)
    ws = workspace_id()
    listed = paginate(transfer_items_query(ws, transfer.id), ITEMS_PAGE_SIZE)
    names = _names(ws)
    return render_template(
        "admin/transfer.html",
        transfer=transfer,
        handover=names.get(
            (transfer.channel_id, transfer.handover_userid), transfer.handover_userid
        ),
        takeover=names.get(
            (transfer.channel_id, transfer.takeover_userid), transfer.takeover_userid
        ),
        channel=db().get(Channel, transfer.channel_id),
        account=db().get(Account, transfer.account_id) if transfer.account_id else None,
        created_by=db().get(User, transfer.created_by) if transfer.created_by else None,
        counts=summary(status_counts(db(), ws, [transfer.id])[transfer.id]),
        items=[
            (item, contact, account, item_error(item)) for item, contact, account in listed.rows
        ],
        groups=group_rows(group_items(db(), ws, transfer.id)),
        page=listed.page,
        pages=listed.pages,
        **labels(),
    )


@bp.post("/transfers/<int:transfer_id>/refresh")
@requires("transfers.manage")
def transfers_refresh(transfer_id: int):
    transfer = scoped_or_404(Transfer, transfer_id)
    if _enqueue(Job.CHECK_TRANSFER, transfer.id, followup=True):
        flash(_("Asking WeCom for each customer's status: reload the page in a moment."), "success")
    else:
        flash(_("The job queue is unreachable: try again later."), "error")
    return redirect(url_for("admin.transfers_detail", transfer_id=transfer.id))


@bp.app_template_global("account_transfer_links")
def account_transfer_links(account_id: int) -> list:
    """(staff member, how many of the account's contacts are their customers) for the
    account page's transfer links; empty for users who may not transfer."""
    if not can("transfers.manage"):
        return []
    counts: dict[int, list] = {}
    for member, _ext in staff_accounts_with_customers(db(), workspace_id(), account_id):
        counts.setdefault(member.id, [member, 0])[1] += 1
    return [tuple(pair) for pair in counts.values() if pair[0].active]


def _customers(handover: Staff, kind: TransferKind) -> tuple[list, str | None]:
    """(external_userid, contact or None, account or None) the handover can hand over: in
    service their customers in Harpoon, departed those WeCom lists as unassigned."""
    rows = current_customers(db(), handover)
    if kind == TransferKind.IN_SERVICE:
        return [tuple(row) for row in rows], None
    channel = db().get(Channel, handover.channel_id)
    try:
        unassigned = unassigned_customers(
            harpoon().wechat.wecom(channel.app_id, channel.secret), handover.userid
        )
    except WeChatApiError as exc:
        log.warning("get_unassigned_list for %s refused: %s", handover.userid, exc)
        return [], str(exc)
    known = {row[0]: row for row in rows}
    listed = dict.fromkeys(row["external_userid"] for row in unassigned)
    return [known.get(ext, (ext, None, None)) for ext in listed], None


def _customer_label(ext: str, contact, account) -> str:
    name = (contact.name if contact else None) or ext
    return f"{name} · {account.name}" if account else name


def _form_page(handover, kind, form, customers, wecom_error, confirm=None):
    return render_template(
        "admin/transfer_new.html",
        handover=handover,
        kind=kind,
        form=form,
        customers=customers,
        wecom_error=wecom_error,
        confirm=confirm,
        channel=db().get(Channel, handover.channel_id),
        scopes=(ALL, ACCOUNT, CHOSEN),
        **labels(),
    )


def _names(ws: int) -> dict[tuple[int, str], str]:
    return {key: name or key[1] for key, name in staff_names(db(), ws).items()}


def _enqueue(job: Job, transfer_id: int, *, followup: bool = False) -> bool:
    """False when Redis is down: the periodic refresh picks the transfer up later. A
    follow-up job is asked for once: a second ask while one waits makes no second job."""
    try:
        if followup:
            harpoon().queue.enqueue_followups({(job, transfer_id)})
        else:
            harpoon().queue.enqueue(job, transfer_id)
    except RedisError as exc:
        log.warning("%s for transfer %s could not be queued: %s", job, transfer_id, exc)
        return False
    return True
