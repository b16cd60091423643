"""The programs pages' routes: each tier's menu with budgets (new, edit), the order queue
(approve, reject, execute with the cost, cancel), and the programs a salesperson ticks on
an account's page. A salesperson orders and cancels only for accounts they own."""

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from wtforms import SelectChoice

from app.admin import bp, db
from app.admin.access import audit, can, requires, workspace_id
from app.admin.lookups import id_arg, paginate, scoped_or_404
from app.admin.programs import presenters
from app.admin.programs.forms import (
    ApproveForm,
    CancelForm,
    ExecuteForm,
    ProgramForm,
    RejectForm,
)
from core.days import LAST_USABLE
from crm.users import users_by_name
from models import Account, Program, ProgramOrder, ProgramOrderStatus, Role, User, utcnow
from revenue import programs
from revenue.programs import ProgramRefused
from sales.tasks import follow_up_program

PAGE_SIZE = 50
STEP_FORMS = {
    "approve": ApproveForm,
    "reject": RejectForm,
    "execute": ExecuteForm,
    "cancel": CancelForm,
}


def _zone() -> ZoneInfo:
    return ZoneInfo(g.get("workspace_timezone") or "Asia/Shanghai")


def today() -> date:
    return datetime.now(_zone()).date()


def may_order(account: Account) -> bool:
    """Whether the signed-in user may tick or cancel programs for the account: sales only
    for accounts they own."""
    if not can("programs.request"):
        return False
    return current_user.role != Role.SALES or account.owner_id == current_user.id


# ---- the menu --------------------------------------------------------------------------------


@bp.get("/programs")
@requires("programs.manage")
def programs_page():
    ws = workspace_id()
    tiers = programs.model_tiers(db(), ws)
    tier = request.args.get("tier", type=int)
    if tier not in tiers:
        tier = tiers[0] if tiers else None
    items = programs.menu(db(), ws, tier) if tier is not None else []
    waiting = programs.count_orders(db(), ws, ProgramOrderStatus.REQUESTED)
    return render_template(
        "admin/programs.html",
        tiers=tiers,
        tier=tier,
        budgets=programs.budgets(db(), ws, items),
        waiting=waiting,
        bar_class=presenters.bar_class,
        **presenters.labels(),
    )


def _tier_choices(form: ProgramForm) -> ProgramForm:
    form.tier.choices = [
        SelectChoice(str(tier), _("Tier %(tier)s", tier=tier))
        for tier in programs.model_tiers(db(), workspace_id())
    ]
    return form


@bp.route("/programs/new", methods=["GET", "POST"])
@requires("programs.manage")
def programs_new():
    return _edit(None)


@bp.route("/programs/<int:program_id>/edit", methods=["GET", "POST"])
@requires("programs.manage")
def programs_edit(program_id: int):
    return _edit(scoped_or_404(Program, program_id))


def _edit(program: Program | None):
    if request.method == "GET":
        form = ProgramForm(formdata=None)
        if program is not None:
            form.fill(program)
        else:
            form.tier.data = request.args.get("tier", 1, type=int)
        return render_template("admin/program_form.html", form=_tier_choices(form), program=program)
    form = _tier_choices(ProgramForm())
    valid = form.validate_on_submit()
    if valid:
        values = form.values()
        problems = programs.program_errors(db(), workspace_id(), values, program)
        for name, messages in problems.items():
            form[name].errors = [*form[name].errors, *(_(message) for message in messages)]
        valid = not problems
    if not valid:
        return render_template("admin/program_form.html", form=form, program=program), 400
    saved = programs.save_program(db(), workspace_id(), values, program)
    audit(
        db(),
        "program.update" if program else "program.create",
        "program",
        saved.id,
        {**values, "budget": str(values["budget"]), "unit_cost": _text(values["unit_cost"])},
    )
    db().commit()
    flash(_("Saved the program “%(name)s”.", name=saved.name), "success")
    return redirect(url_for("admin.programs_page", tier=saved.tier))


def _text(amount) -> str | None:
    return None if amount is None else str(amount)


# ---- the order queue -------------------------------------------------------------------------


def _queue_filters() -> dict:
    status = request.args.get("status", ProgramOrderStatus.REQUESTED.value)
    if status not in presenters.STATUS_LABELS and status != "all":
        status = ProgramOrderStatus.REQUESTED.value
    tier = request.args.get("tier", type=int)
    return {
        "status": status,
        "tier": tier if tier in programs.TIERS else None,
        "program": id_arg("program", Program.id),
        "owner": id_arg("owner", User.id),
    }


@bp.get("/programs/orders")
@requires("programs.manage")
def programs_orders():
    return _queue()


def _queue(failed: tuple[int, str, object, str] | None = None, status: int = 200):
    """The queue; `failed` is (order id, step, form, order status) of a step refused,
    shown with its messages on its row."""
    ws = workspace_id()
    filters = _queue_filters()
    if failed is not None:  # a post: the refused order's status, so its row is listed
        filters = {**filters, "status": failed[3]}
    page = paginate(
        programs.orders_query(
            ws,
            status="" if filters["status"] == "all" else filters["status"],
            tier=filters["tier"],
            program_id=filters["program"],
            owner_id=filters["owner"],
        ),
        PAGE_SIZE,
    )
    forms = {}
    for order, _program, _account in page.rows:
        forms[order.id] = {
            step: form_class(formdata=None, prefix=f"{step}-{order.id}")
            for step, form_class in STEP_FORMS.items()
        }
        forms[order.id]["execute"].executed_on.data = today()
    open_step = None
    if failed is not None and failed[0] in forms:
        forms[failed[0]][failed[1]] = failed[2]
        open_step = (failed[0], failed[1])
    users = users_by_name(db(), ws)
    return render_template(
        "admin/program_orders.html",
        page=page,
        forms=forms,
        open_step=open_step,
        filters=filters,
        filter_args={k: v for k, v in filters.items() if v not in (None, "")},
        menu=programs.menu(db(), ws),
        users=users,
        user_names=dict(users),
        today=today(),
        **presenters.labels(),
    ), status


def _order(order_id: int) -> ProgramOrder:
    return scoped_or_404(ProgramOrder, order_id)


def _step(order_id: int, step: str, run):
    """Validate the step's form, run it, audit, commit; the queue with the row's messages
    when the form or the domain refuses."""
    order = _order(order_id)
    form = STEP_FORMS[step](prefix=f"{step}-{order.id}")
    if form.validate_on_submit():
        try:
            run(order, form)
        except ProgramRefused as refused:
            db().rollback()
            order = _order(order_id)
            target = form._fields.get(refused.field or "")
            if target is not None:
                target.errors = [*target.errors, _(refused.message)]
            else:
                flash(_(refused.message), "error")
        else:
            audit(
                db(),
                f"program_order.{step}",
                "program_order",
                order.id,
                {
                    "account_id": order.account_id,
                    "program_id": order.program_id,
                    "status": order.status,
                    "cost": _text(order.cost),
                    "note": order.note,
                },
            )
            db().commit()
            return None
    return _queue((order.id, step, form, order.status), 400)


def _back():
    """To the queue as it was filtered (only ever a path of the queue)."""
    wanted = request.form.get("next") or ""
    queue = url_for("admin.programs_orders")
    return redirect(wanted if wanted.startswith(queue) else queue)


@bp.post("/programs/orders/<int:order_id>/approve")
@requires("programs.manage")
def programs_order_approve(order_id: int):
    def run(order, form):
        programs.approve(
            db(),
            order,
            user_id=current_user.id,
            note=form.note.data,
            over_budget_reason=form.over_budget_reason.data,
        )

    return _step(order_id, "approve", run) or _done(_("Approved."))


@bp.post("/programs/orders/<int:order_id>/reject")
@requires("programs.manage")
def programs_order_reject(order_id: int):
    def run(order, form):
        programs.reject(db(), order, user_id=current_user.id, note=form.note.data)

    return _step(order_id, "reject", run) or _done(_("Rejected."))


@bp.post("/programs/orders/<int:order_id>/execute")
@requires("programs.manage")
def programs_order_execute(order_id: int):
    def run(order, form):
        programs.execute(
            db(),
            order,
            user_id=current_user.id,
            cost=form.cost.data,
            executed_at=_executed_at(form.executed_on.data),
            note=form.note.data,
        )
        _owner_task(order)

    return _step(order_id, "execute", run) or _done(_("Recorded as executed."))


@bp.post("/programs/orders/<int:order_id>/cancel")
@requires("programs.manage")
def programs_order_cancel(order_id: int):
    def run(order, form):
        programs.cancel(db(), order, user_id=current_user.id, note=form.note.data)

    return _step(order_id, "cancel", run) or _done(_("Cancelled."))


def _done(message: str):
    flash(message, "success")
    return _back()


def _executed_at(day: date) -> datetime:
    """When it ran: now for today; noon in the workspace's time zone for an earlier day (a
    later day stays later than now, and is refused; one past 2100 is taken as 2100-12-31,
    which no time zone moves past the year 9999)."""
    if day == today():
        return utcnow()
    return datetime.combine(min(day, LAST_USABLE), time(12), _zone()).astimezone(UTC)


def _owner_task(order: ProgramOrder) -> None:
    program = db().get(Program, order.program_id)
    title = _("Follow up on the program “%(name)s”", name=program.name)
    follow_up_program(db(), order, title=title, created_by=current_user.id)


# ---- on an account's page ----------------------------------------------------------------------


def program_section(account: Account) -> dict:
    """The account page's programs: its tier's menu to tick, and its orders."""
    return {
        "programs": programs.account_programs(db(), account),
        "may_order_programs": may_order(account),
        "program_labels": presenters.labels(),
    }


@bp.post("/accounts/<int:account_id>/programs")
@requires("programs.request")
def accounts_programs_request(account_id: int):
    account = scoped_or_404(Account, account_id)
    back = redirect(url_for("admin.accounts_detail", account_id=account.id) + "#account-programs")
    if not may_order(account):
        abort(403)
    wanted = [
        int(value)
        for value in request.form.getlist("program_ids")
        if value.isascii() and value.isdigit() and len(value) < 10
    ]
    if not wanted:
        flash(_("Tick at least one program."), "error")
        return back
    note = (request.form.get("note") or "").strip()[:300] or None
    asked = []
    for program_id in dict.fromkeys(wanted):
        program = programs.program_of(db(), account.workspace_id, program_id)
        try:
            order = programs.request_program(
                db(),
                account.workspace_id,
                program_id=program_id,
                account_id=account.id,
                user_id=current_user.id,
                note=note,
            )
        except ProgramRefused as refused:
            name = program.name if program else f"#{program_id}"
            flash(_("%(name)s: %(reason)s", name=name, reason=_(refused.message)), "error")
            continue
        audit(
            db(),
            "program_order.request",
            "program_order",
            order.id,
            {"account_id": account.id, "program_id": program_id},
        )
        asked.append(program.name)
    db().commit()
    if asked:
        flash(_("Requested: %(names)s.", names="、".join(asked)), "success")
    return back


@bp.post("/accounts/<int:account_id>/programs/<int:order_id>/cancel")
@requires("programs.request")
def accounts_programs_cancel(account_id: int, order_id: int):
    account = scoped_or_404(Account, account_id)
    order = scoped_or_404(ProgramOrder, order_id, ProgramOrder.account_id == account.id)
    if not may_order(account):
        abort(403)
    back = redirect(url_for("admin.accounts_detail", account_id=account.id) + "#account-programs")
    try:
        programs.cancel(db(), order, user_id=current_user.id)
    except ProgramRefused as refused:
        flash(_(refused.message), "error")
        return back
    audit(db(), "program_order.cancel", "program_order", order.id, {"account_id": account.id})
    db().commit()
    flash(_("Cancelled."), "success")
    return back
