"""The routing page's routes: the rules (new, edit, order, on/off), the SLA settings and
the recent assignments with their SLA status."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError as InputError
from wtforms import SelectChoice

from app.admin import bp, db
from app.admin.access import audit, ids_of_workspace, requires, workspace_id
from app.admin.lookups import scoped_or_404
from app.admin.routing import presenters
from app.admin.routing.forms import RuleForm, SettingsForm
from crm.users import assignable_users, users_by_name
from models import RoutingRule, utcnow
from sales import routing

ASSIGNMENTS_SHOWN = 50


def _rule_form(form: RuleForm, current: list[int]) -> RuleForm:
    """The workspace's active users to choose from, and any the rule names who no longer are."""
    active = assignable_users(db(), workspace_id(), None)
    known = {user_id for user_id, _name in active}
    form.user_ids.choices = [SelectChoice(str(user_id), name) for user_id, name in active] + [
        SelectChoice(str(user_id), f"#{user_id}") for user_id in current if user_id not in known
    ]
    return form


def _settings_form(form: SettingsForm | None = None) -> SettingsForm:
    if form is None:
        form = SettingsForm(formdata=None)
        form.fill(routing.load_settings(db(), workspace_id()))
    form.manager_id.choices = [SelectChoice("", _("The workspace's owners and admins"))] + [
        SelectChoice(str(user_id), name) for user_id, name in users_by_name(db(), workspace_id())
    ]
    return form


def _page(settings_form: SettingsForm | None = None, status: int = 200):
    ws = workspace_id()
    rules = routing.rules_of(db(), ws)
    names = {user_id: name for user_id, name in assignable_users(db(), ws, None)}
    wanted = {user_id for rule in rules for user_id in rule.user_ids}
    settings = routing.load_settings(db(), ws)
    return render_template(
        "admin/routing.html",
        rules=presenters.rule_rows(rules, names, routing.user_loads(db(), ws, wanted)),
        settings=settings,
        working_days=presenters.working_days(settings.work_days),
        manager=names.get(settings.manager_id),
        settings_form=_settings_form(settings_form),
        assignments=presenters.assignment_rows(
            routing.recent_assignments(db(), ws, ASSIGNMENTS_SHOWN), utcnow()
        ),
    ), status


@bp.get("/routing")
@requires("routing.manage")
def routing_page():
    return _page()


@bp.route("/routing/rules/new", methods=["GET", "POST"])
@requires("routing.manage")
def routing_rule_new():
    return _edit(None)


@bp.route("/routing/rules/<int:rule_id>/edit", methods=["GET", "POST"])
@requires("routing.manage")
def routing_rule_edit(rule_id: int):
    return _edit(scoped_or_404(RoutingRule, rule_id))


def _edit(rule: RoutingRule | None):
    if request.method == "GET":
        form = RuleForm(formdata=None)
        if rule is not None:
            form.fill(rule)
        return render_template(
            "admin/routing_rule.html",
            form=_rule_form(form, rule.user_ids if rule else []),
            rule=rule,
        )
    form = _rule_form(RuleForm(), rule.user_ids if rule else [])
    valid = form.validate_on_submit()
    if not ids_of_workspace(db(), form, routing.RULE_REFERENCES) or not valid:
        return render_template("admin/routing_rule.html", form=form, rule=rule), 400
    values = form.values()
    try:
        saved = routing.save_rule(db(), workspace_id(), values, rule)
    except InputError:  # a user removed between the check and the save
        db().rollback()
        form.user_ids.errors = [*form.user_ids.errors, _("Not a user of this workspace.")]
        return render_template("admin/routing_rule.html", form=form, rule=rule), 400
    audit(
        db(),
        "routing_rule.update" if rule else "routing_rule.create",
        "routing_rule",
        saved.id,
        values,
    )
    db().commit()
    flash(_("Saved the rule “%(name)s”.", name=saved.name), "success")
    return redirect(url_for("admin.routing_page"))


@bp.post("/routing/rules/<int:rule_id>/move")
@requires("routing.manage")
def routing_rule_move(rule_id: int):
    rule = scoped_or_404(RoutingRule, rule_id)
    step = {"up": -1, "down": 1}.get(request.form.get("direction", ""))
    if step is None:
        abort(400)
    if routing.move_rule(db(), rule, step):
        audit(db(), "routing_rule.move", "routing_rule", rule.id, {"direction": step})
        db().commit()
    return redirect(url_for("admin.routing_page"))


@bp.post("/routing/rules/<int:rule_id>/toggle")
@requires("routing.manage")
def routing_rule_toggle(rule_id: int):
    rule = scoped_or_404(RoutingRule, rule_id)
    rule.enabled = not rule.enabled
    audit(db(), "routing_rule.update", "routing_rule", rule.id, {"enabled": rule.enabled})
    db().commit()
    if rule.enabled:
        flash(_("The rule “%(name)s” is on.", name=rule.name), "success")
    else:
        flash(_("The rule “%(name)s” is off.", name=rule.name), "success")
    return redirect(url_for("admin.routing_page"))


@bp.post("/routing/settings")
@requires("routing.manage")
def routing_settings():
    form = _settings_form(SettingsForm())
    valid = form.validate_on_submit()
    if not ids_of_workspace(db(), form, routing.SETTINGS_REFERENCES) or not valid:
        return _page(form, 400)
    values = form.values()
    try:
        routing.save_settings(db(), workspace_id(), values)
    except InputError:
        db().rollback()
        form.manager_id.errors = [*form.manager_id.errors, _("Not a user of this workspace.")]
        return _page(form, 400)
    audit(db(), "routing_settings.update", "routing_settings", workspace_id(), values)
    db().commit()
    flash(_("Saved the SLA settings."), "success")
    return redirect(url_for("admin.routing_page"))
