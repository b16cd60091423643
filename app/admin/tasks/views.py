"""The tasks page (mine by default for sales; by status, assignee, overdue), closing a task
done or skipped with a note, reassigning one; a task by hand on an account's or a contact's
page; the task rules; and the salespeople's digest settings."""

from datetime import timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError
from sqlalchemy import select

from app.admin import bp, db
from app.admin.access import audit, can, requires, workspace_id
from app.admin.auth import safe_path
from app.admin.labels import error_messages, stage_names
from app.admin.lookups import paginate, scoped_or_404
from app.admin.tasks.forms import (
    AlertTaskForm,
    AssignTaskForm,
    CloseTaskForm,
    DigestForm,
    StaffDigestForm,
    TaskForm,
)
from app.admin.tasks.presenters import (
    RULE_ON_LABELS,
    SOURCE_LABELS,
    STATUS_BADGES,
    STATUS_LABELS,
    assignable_users,
    assignee_choices,
)
from app.extensions import harpoon
from models import Account, Contact, Role, Staff, Task, TaskRule, TaskStatus, Workspace, utcnow
from sales.task_rules import TIER_VALUES, save_task_rule
from sales.tasks import UNASSIGNED, close_task, create_task, tasks_query
from scoring.engine import load_model

PAGE_SIZE = 50
MINE = "me"


def _may_work_on(task: Task) -> bool:
    """Marketers and admins work on any task; a salesperson on theirs and unassigned ones."""
    return can("tasks.assign") or task.assignee_id in (None, current_user.id)


def _back(default: str):
    target = request.form.get("next") or request.args.get("next")
    return redirect(target if safe_path(target, "/admin/") else default)


@bp.get("/tasks")
@requires("tasks.view")
def tasks():
    ws = workspace_id()
    users = assignable_users(db(), ws)
    user_ids = {user_id for user_id, _name in users}
    default = MINE if current_user.role == Role.SALES else ""
    assignee_arg = request.args.get("assignee", default)
    if assignee_arg == MINE:
        assignee = current_user.id
    elif assignee_arg == UNASSIGNED:
        assignee = UNASSIGNED
    elif assignee_arg.isascii() and assignee_arg.isdigit() and int(assignee_arg) in user_ids:
        assignee = int(assignee_arg)
    else:
        assignee, assignee_arg = None, ""
    status = request.args.get("status", TaskStatus.OPEN)
    if status not in STATUS_LABELS:
        status = ""
    overdue = request.args.get("overdue") == "1"
    now = utcnow()
    page = paginate(
        tasks_query(ws, status=status or None, assignee=assignee, overdue=overdue, now=now),
        PAGE_SIZE,
    )
    assign_form = AssignTaskForm()
    assign_form.assignee_id.choices = assignee_choices(users, _("Unassigned"))
    return render_template(
        "admin/tasks.html",
        rows=page.rows,
        page=page.page,
        pages=page.pages,
        total=page.total,
        users=users,
        assignee=assignee_arg,
        status=status,
        overdue=overdue,
        now=now,
        close_form=CloseTaskForm(),
        assign_form=assign_form,
        source_labels=SOURCE_LABELS,
        status_labels=STATUS_LABELS,
        status_badges=STATUS_BADGES,
        may_work_on=_may_work_on,
    )


@bp.post("/tasks/<int:task_id>/close")
@requires("tasks.work")
def tasks_close(task_id: int):
    task = scoped_or_404(Task, task_id)
    if not _may_work_on(task):
        abort(403)
    form = CloseTaskForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
        return _back(url_for("admin.tasks"))
    closed = close_task(
        db(),
        task,
        status=TaskStatus(form.status.data),
        outcome=form.outcome.data or None,
        user_id=current_user.id,
        lanes=harpoon().settings.inbox_lanes,
    )
    if not closed:
        flash(_("This task was closed already."), "error")
        return _back(url_for("admin.tasks"))
    db().commit()
    if task.status == TaskStatus.DONE and task.contact_id is not None:
        harpoon().queue.drain_requests.mark(task.workspace_id)  # the person's touchpoint
    flash(
        _("Task done: %(title)s", title=task.title)
        if task.status == TaskStatus.DONE
        else _("Task skipped: %(title)s", title=task.title),
        "success",
    )
    return _back(url_for("admin.tasks"))


@bp.post("/tasks/<int:task_id>/assign")
@requires("tasks.assign")
def tasks_assign(task_id: int):
    task = scoped_or_404(Task, task_id)
    form = AssignTaskForm()
    form.assignee_id.choices = assignee_choices(
        assignable_users(db(), task.workspace_id), _("Unassigned")
    )
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
        return _back(url_for("admin.tasks"))
    if task.status != TaskStatus.OPEN:
        flash(_("This task was closed already."), "error")
        return _back(url_for("admin.tasks"))
    before = task.assignee_id
    if form.assignee_id.data != before:
        task.assignee_id = form.assignee_id.data
        task.reminded_at = None  # the new assignee hears of it in their digest
        audit(db(), "task.assign", "task", task.id, {"assignee_id": [before, task.assignee_id]})
        db().commit()
    flash(_("Task reassigned: %(title)s", title=task.title), "success")
    return _back(url_for("admin.tasks"))


def _new_task(account: Account | None, contact: Contact | None, back: str):
    form = TaskForm()
    users = assignable_users(db(), workspace_id())
    form.assignee_id.choices = assignee_choices(users, _("Unassigned"))
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
        return redirect(back)
    assignee_id = form.assignee_id.data
    if not can("tasks.assign") and assignee_id not in (None, current_user.id):
        abort(403)  # a salesperson adds tasks for themselves (or for nobody yet)
    now = utcnow()
    task = create_task(
        db(),
        workspace_id=workspace_id(),
        title=form.title.data,
        detail=form.detail.data or None,
        due_at=now + timedelta(hours=form.due_hours.data),
        account_id=account.id if account else None,
        contact_id=contact.id if contact else None,
        assignee_id=assignee_id,
        created_by=current_user.id,
        now=now,
    )
    db().commit()
    flash(_("Task added: %(title)s", title=task.title), "success")
    return redirect(back)


@bp.post("/accounts/<int:account_id>/tasks")
@requires("tasks.work")
def accounts_task_new(account_id: int):
    account = scoped_or_404(Account, account_id)
    return _new_task(account, None, url_for("admin.accounts_detail", account_id=account.id))


@bp.post("/contacts/<int:contact_id>/tasks")
@requires("tasks.work")
def contacts_task_new(contact_id: int):
    contact = scoped_or_404(Contact, contact_id)
    account = db().get(Account, contact.account_id) if contact.account_id is not None else None
    return _new_task(account, contact, url_for("admin.contacts_detail", contact_id=contact.id))


def task_form_for_page() -> TaskForm | None:
    """The "add a task" form an account's or a contact's page shows (None: not allowed)."""
    if not can("tasks.work"):
        return None
    form = TaskForm(formdata=None)
    form.assignee_id.choices = assignee_choices(
        assignable_users(db(), workspace_id()), _("Unassigned")
    )
    form.assignee_id.data = current_user.id
    return form


# --- task rules -----------------------------------------------------------------------


def _stages() -> dict[str, str]:
    """The workspace's stage keys -> their names, in the model's order."""
    return stage_names(load_model(db(), workspace_id()).stages)


@bp.get("/tasks/rules")
@requires("task_rules.manage")
def task_rules(values: dict | None = None, errors: dict | None = None, status: int = 200):
    ws = workspace_id()
    rules = (
        db()
        .scalars(select(TaskRule).where(TaskRule.workspace_id == ws).order_by(TaskRule.id))
        .all()
    )
    workspace = db().get(Workspace, ws)
    alert_form = AlertTaskForm(formdata=None, obj=workspace)
    return (
        render_template(
            "admin/task_rules.html",
            rules=rules,
            stages=_stages(),
            tiers=TIER_VALUES,
            on_labels=RULE_ON_LABELS,
            values=values or {"on": "stage", "due_hours": "24"},
            errors=errors or {},
            alert_form=alert_form,
        ),
        status,
    )


@bp.post("/tasks/rules")
@requires("task_rules.manage")
def task_rules_create():
    values = {key: request.form.get(key, "") for key in ("on", "title", "detail", "due_hours")}
    values["value"] = request.form.get(f"value_{values['on']}", "")
    try:
        rule = save_task_rule(db(), workspace_id(), values, _stages())
    except ValidationError as exc:
        db().rollback()
        errors = {key: error_messages(messages) for key, messages in exc.messages.items()}
        return task_rules(values=values, errors=errors, status=400)
    audit(db(), "task_rule.create", "task_rule", rule.id, {**values})
    db().commit()
    flash(_("Task rule added."), "success")
    return redirect(url_for("admin.task_rules"))


@bp.post("/tasks/rules/<int:rule_id>/toggle")
@requires("task_rules.manage")
def task_rules_toggle(rule_id: int):
    rule = scoped_or_404(TaskRule, rule_id)
    rule.active = not rule.active
    audit(db(), "task_rule.toggle", "task_rule", rule.id, {"active": rule.active})
    db().commit()
    flash(_("Task rule turned on.") if rule.active else _("Task rule paused."), "success")
    return redirect(url_for("admin.task_rules"))


@bp.post("/tasks/rules/<int:rule_id>/delete")
@requires("task_rules.manage")
def task_rules_delete(rule_id: int):
    rule = scoped_or_404(TaskRule, rule_id)
    audit(db(), "task_rule.delete", "task_rule", rule.id, {"title": rule.title})
    db().delete(rule)
    db().commit()
    flash(_("Task rule deleted."), "success")
    return redirect(url_for("admin.task_rules"))


@bp.post("/tasks/alert-settings")
@requires("task_rules.manage")
def task_alert_settings():
    workspace = db().get(Workspace, workspace_id())
    form = AlertTaskForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
        return redirect(url_for("admin.task_rules"))
    before = workspace.alert_task_hours
    workspace.alert_task_hours = form.alert_task_hours.data
    audit(
        db(),
        "workspace.alert_task_hours",
        "workspace",
        workspace.id,
        {"alert_task_hours": [before, workspace.alert_task_hours]},
    )
    db().commit()
    flash(_("Saved."), "success")
    return redirect(url_for("admin.task_rules"))


# --- digests --------------------------------------------------------------------------


@bp.post("/notifications/settings")
@requires("wecom.manage")
def notifications_settings():
    workspace = db().get(Workspace, workspace_id())
    form = DigestForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
        return redirect(url_for("admin.notifications"))
    changes = {
        "digest_minutes": [workspace.digest_minutes, form.digest_minutes.data],
        "staff_messages_per_day": [
            workspace.staff_messages_per_day,
            form.staff_messages_per_day.data,
        ],
    }
    workspace.digest_minutes = form.digest_minutes.data
    workspace.staff_messages_per_day = form.staff_messages_per_day.data
    audit(db(), "workspace.digests", "workspace", workspace.id, changes)
    db().commit()
    flash(_("Saved."), "success")
    return redirect(url_for("admin.notifications"))


@bp.post("/staff/<int:staff_id>/digest")
@requires("wecom.manage")
def staff_digest(staff_id: int):
    member = scoped_or_404(Staff, staff_id)
    form = StaffDigestForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
        return redirect(url_for("admin.staff_detail", staff_id=member.id))
    before = member.digest_minutes
    member.digest_minutes = form.digest_minutes.data
    audit(
        db(),
        "staff.digest",
        "staff",
        member.id,
        {"digest_minutes": [before, member.digest_minutes]},
    )
    db().commit()
    flash(_("Saved."), "success")
    return redirect(url_for("admin.staff_detail", staff_id=member.id))
