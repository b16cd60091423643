"""The sales home's routes: the page, and closing a task due from it."""

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from app.admin import bp, db
from app.admin.access import can, requires, workspace_id
from app.admin.home.presenters import REASON_BADGES, change_rows, reason_text
from app.admin.labels import stage_names
from app.admin.lookups import id_arg, scoped_or_404
from app.extensions import harpoon
from core.lanes import lane_of
from crm.touchpoints import person_key
from crm.users import assignable_users, workspace_user
from models import Role, Task, TaskStatus, User, utcnow
from sales.home import Scope, Window
from sales.home import home as sales_home
from sales.staff import corps_of_user
from sales.tasks import close_task, person_identity
from scoring.engine import load_model

EVERYONE = "all"
OUTCOME_MAX = 1000


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class CloseTaskForm(FlaskForm):
    status = HiddenField(validators=[DataRequired(), AnyOf([TaskStatus.DONE, TaskStatus.SKIPPED])])
    outcome = StringField(
        _l("Task note"), validators=[Optional(), Length(max=OUTCOME_MAX)], filters=[_strip]
    )


def _sees_others() -> bool:
    """Marketers, admins and owners look at any salesperson's home; sales see their own."""
    return current_user.role != Role.SALES


def _chosen() -> tuple[str, User | None]:
    """Whose home: ("all", None) for the whole workspace, or (user id, the user)."""
    if not _sees_others():
        return str(current_user.id), current_user
    wanted = request.args.get("user", "").strip()
    if wanted in ("", EVERYONE):
        return EVERYONE, None
    user_id = id_arg("user", User.id) if wanted.isascii() and wanted.isdigit() else None
    user = workspace_user(db(), workspace_id(), user_id) if user_id is not None else None
    if user is None:
        abort(404)
    return str(user.id), user


@bp.get("/home")
@requires("contacts.view")
def home():
    return _home_page()


def _home_page(status: int = 200):
    ws = workspace_id()
    chosen, user = _chosen()
    window = Window.at(utcnow(), g.get("workspace_timezone") or "Asia/Shanghai")
    data = sales_home(db(), Scope(ws, user.id if user else None), window)
    names = stage_names(load_model(db(), ws).stages)
    return render_template(
        "admin/home.html",
        home=data,
        changes=change_rows(data.changes, names),
        stage_names=names,
        reason_text=reason_text,
        reason_badges=REASON_BADGES,
        chosen=chosen,
        viewed=user,
        own=user is not None and user.id == current_user.id,
        users=assignable_users(db(), ws, None) if _sees_others() else [],
        everyone=EVERYONE,
        can_close=can("tasks.close"),
        outcome_max=OUTCOME_MAX,
        poster_corps=corps_of_user(db(), ws, current_user.id),
    ), status


@bp.post("/home/tasks/<int:task_id>/close")
@requires("tasks.close")
def home_close_task(task_id: int):
    conditions = [] if _sees_others() else [Task.assignee_id == current_user.id]
    task = scoped_or_404(Task, task_id, *conditions)
    back = url_for("admin.home", user=request.args.get("user") or None)
    form = CloseTaskForm()
    if not form.validate_on_submit():
        flash(
            _(
                "Close the task as done or skipped, with a note of at most %(max)s characters.",
                max=OUTCOME_MAX,
            ),
            "error",
        )
        return _home_page(status=400)
    lanes = harpoon().settings.inbox_lanes
    closed = close_task(
        db(),
        task,
        status=TaskStatus(form.status.data),
        outcome=form.outcome.data or None,
        user_id=current_user.id,
        lanes=lanes,
    )
    if not closed:
        flash(_("This task was closed already."))
        return redirect(back)
    # The done task is its person's touchpoint: the drain of that person's lane takes it.
    identity = (
        person_identity(db(), task.workspace_id, task.contact_id)
        if task.status == TaskStatus.DONE and task.contact_id is not None
        else None
    )
    db().commit()
    if identity is not None:
        harpoon().queue.drain_requests.mark(task.workspace_id, lane_of(person_key(identity), lanes))
    flash(
        _("Done: %(title)s", title=task.title)
        if task.status == TaskStatus.DONE
        else _("Skipped: %(title)s", title=task.title),
        "success",
    )
    return redirect(back)
