"""The opportunity pages' routes: the list with its filters and totals, one opportunity with
its history, the form that adds or edits one, and the pipeline's stages.

A salesperson sees the opportunities they own or that are on accounts they own, and adds
or edits those of accounts they own; everyone else who sees contacts sees them all."""

import secrets

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError
from sqlalchemy.exc import IntegrityError

from app.admin import bp, db
from app.admin.access import (
    MINE,
    audit,
    can,
    list_scope,
    requires,
    scope_args,
    workspace_id,
)
from app.admin.labels import stage_names
from app.admin.lookups import id_arg, paginate, scoped_or_404
from app.admin.opportunities import presenters
from app.admin.opportunities.forms import (
    FIELDS,
    NOT_YOURS,
    filter_of,
    form_values,
    list_filters,
    load_item,
    pipeline_errors,
    posted,
    resolve_errors,
    translated,
)
from app.admin.scoring.forms import posted as posted_rows
from app.extensions import harpoon
from core.forms import flatten, unflatten
from core.forms import shown as shown_value
from core.jobs import Job
from crm.users import assignable_users, users_by_name, workspace_user
from models import Account, Opportunity, OpportunitySource, Role
from revenue import directory
from revenue.opportunities import resolve, save_opportunity
from revenue.pipeline import pipeline_of, save_pipeline, stage_rows, stages_in_use
from scoring.engine import load_model

PAGE_SIZE = 50
REQUEST_KEY_BYTES = 18  # the new-opportunity form's nonce: 24 characters
REQUEST_KEY_LENGTH = 40  # models.Opportunity.request_key
AUDITED = ("name", "amount", "type", "stage", "probability", "status", "owner_id", "account_id")


def _is_sales() -> bool:
    return current_user.role == Role.SALES


def _mine_of() -> int | None:
    """Whose opportunities the list shows: a salesperson always their own."""
    if _is_sales() or list_scope() == MINE:
        return current_user.id
    return None


def _visible_or_404(opportunity_id: int) -> Opportunity:
    opportunity = scoped_or_404(Opportunity, opportunity_id)
    if _is_sales():
        account = db().get(Account, opportunity.account_id)
        if current_user.id not in (opportunity.owner_id, account.owner_id):
            abort(404)
    return opportunity


def _may_edit(account: Account | None) -> bool:
    """Sales only on the accounts they own."""
    return can("opportunities.manage") and (
        not _is_sales() or (account is not None and account.owner_id == current_user.id)
    )


@bp.get("/opportunities")
@requires("opportunities.view")
def opportunities():
    ws = workspace_id()
    stages = pipeline_of(db(), ws)
    users = users_by_name(db(), ws)
    filters = list_filters({stage.key for stage in stages}, {user_id for user_id, _n in users})
    query = directory.opportunities_query(ws, filter_of(filters), _mine_of())
    listed = paginate(query, PAGE_SIZE)
    scope = MINE if _is_sales() else list_scope()
    active = {name: value for name, value in filters.items() if value}
    list_args = {**active, **({} if _is_sales() else scope_args(scope))}
    return render_template(
        "admin/opportunities.html",
        rows=listed.rows,
        page=listed.page,
        pages=listed.pages,
        totals=directory.totals(db(), query),
        filters=filters,
        list_args=list_args,
        scope=scope,
        scope_choice=not _is_sales(),
        stage_names={stage.key: stage.name for stage in stages},
        stage_options=presenters.stage_options(stages),
        users=users,
        **presenters.labels(),
    )


def account_section(account: Account) -> dict:
    """The account page's Opportunities section (admin/_account_opportunities.html): a
    salesperson sees those of another's account only when they own them."""
    rows = directory.account_opportunities(db(), account.workspace_id, account.id)
    if _is_sales() and account.owner_id != current_user.id:
        rows = [row for row in rows if row[0].owner_id == current_user.id]
    return {
        "account_opportunities": rows,
        "opportunity_stage_names": {
            stage.key: stage.name for stage in pipeline_of(db(), account.workspace_id)
        },
        "opportunity_labels": presenters.labels(),
        "may_add_opportunity": _may_edit(account),
    }


@bp.get("/opportunities/<int:opportunity_id>")
@requires("opportunities.view")
def opportunities_detail(opportunity_id: int):
    opportunity = _visible_or_404(opportunity_id)
    ws = opportunity.workspace_id
    account = db().get(Account, opportunity.account_id)
    stages = pipeline_of(db(), ws)
    return render_template(
        "admin/opportunity.html",
        opportunity=opportunity,
        account=account,
        owner=workspace_user(db(), ws, opportunity.owner_id),
        history=directory.history(db(), opportunity),
        stage_moves=directory.stage_moves(db(), opportunity),
        stage_names={stage.key: stage.name for stage in stages},
        account_stage_names=stage_names(load_model(db(), ws).stages),
        may_edit=_may_edit(account),
        **presenters.labels(),
    )


@bp.route("/opportunities/new", methods=["GET", "POST"])
@requires("opportunities.manage")
def opportunities_new():
    return _form(None)


@bp.route("/opportunities/<int:opportunity_id>/edit", methods=["GET", "POST"])
@requires("opportunities.manage")
def opportunities_edit(opportunity_id: int):
    opportunity = _visible_or_404(opportunity_id)
    if not _may_edit(db().get(Account, opportunity.account_id)):
        abort(403)
    return _form(opportunity)


def _form(opportunity: Opportunity | None):
    ws = workspace_id()
    stages = {stage.key: stage for stage in pipeline_of(db(), ws)}
    if request.method == "GET":
        values = form_values(opportunity, id_arg("account_id", Account.id))
        if opportunity is None:
            values["request_key"] = secrets.token_urlsafe(REQUEST_KEY_BYTES)
        return _form_page(opportunity, values, {})
    values = posted()
    request_key = None
    if opportunity is None:
        request_key = request.form.get("request_key", "").strip()[:REQUEST_KEY_LENGTH] or None
        values["request_key"] = request_key or ""
        made = request_key and directory.by_request_key(db(), ws, request_key)
        if made:  # the same form posted again (a double click): the first made it
            return _saved(made)
    item, errors = load_item(db(), ws, values, stages)
    if (
        opportunity is not None
        and values["stage"] != opportunity.stage
        and item.get("probability") == opportunity.probability
    ):
        del item["probability"]  # shown unchanged: the new stage's own applies
    if errors:
        return _form_page(opportunity, values, errors), 422
    resolved = resolve(db(), ws, item, opportunity, stages)
    if resolved.errors:
        return _form_page(opportunity, values, resolve_errors(resolved.errors)), 422
    if not _may_edit(resolved.account):
        return _form_page(opportunity, values, translated({"account_id": [NOT_YOURS]})), 422
    before = {name: getattr(opportunity, name, None) for name in AUDITED}
    saved = save_opportunity(
        db(),
        ws,
        item,
        resolved,
        source=OpportunitySource.ADMIN,
        existing=opportunity,
        user_id=current_user.id,
    )
    row = saved.opportunity
    if not values["owner_id"] and row.owner_id is not None:
        row.owner_id = None  # the form's empty owner is "no owner"
    if not values["lost_reason"]:
        row.lost_reason = None
    if request_key:
        row.request_key = request_key
    try:
        db().flush()
    except IntegrityError:
        db().rollback()
        made = request_key and directory.by_request_key(db(), ws, request_key)
        if not made:
            raise
        return _saved(made)  # the same form posted at the same moment, and that one won
    changes = {
        name: [_plain(before[name]), _plain(getattr(row, name))]
        for name in AUDITED
        if before[name] != getattr(row, name)
    }
    if changes:
        action = "opportunity.create" if opportunity is None else "opportunity.update"
        audit(db(), action, "opportunity", row.id, {"name": row.name, **changes})
    db().commit()
    if not changes:
        flash(_("Nothing changed."), "success")
        return redirect(url_for("admin.opportunities_detail", opportunity_id=row.id))
    harpoon().queue.request_followups({(Job.ATTRIBUTE_OPPORTUNITIES, row.workspace_id)})
    return _saved(row)


def _saved(row: Opportunity):
    flash(_("Saved %(name)s.", name=row.name), "success")
    return redirect(url_for("admin.opportunities_detail", opportunity_id=row.id))


def _plain(value):
    return None if value is None else str(value) if not isinstance(value, int) else value


def _form_page(opportunity: Opportunity | None, values: dict, errors: dict):
    ws = workspace_id()
    chosen = values.get("account_id")
    accounts = directory.account_choices(
        db(), ws, owner_id=current_user.id if _is_sales() else None
    )
    if (
        chosen
        and chosen.isascii()
        and chosen.isdigit()
        and int(chosen) not in {a for a, _n in accounts}
    ):
        account = db().get(Account, int(chosen)) if len(chosen) < 19 else None
        if account is not None and account.workspace_id == ws and _may_edit(account):
            accounts.insert(0, (account.id, account.name))
    current_owner = opportunity.owner_id if opportunity else None
    return render_template(
        "admin/opportunity_form.html",
        opportunity=opportunity,
        values=values,
        errors=errors,
        fields=FIELDS,
        account_options=[("", _("Pick an account"))]
        + [(str(account_id), name) for account_id, name in accounts],
        stage_options=presenters.stage_options(pipeline_of(db(), ws)),
        type_options=[(key.value, label) for key, label in presenters.TYPE_LABELS.items()],
        owner_options=[("", _("No owner"))]
        + [(str(user_id), name) for user_id, name in assignable_users(db(), ws, current_owner)],
    )


# ---- the pipeline --------------------------------------------------------------------------


@bp.route("/opportunities/pipeline", methods=["GET", "POST"])
@requires("pipeline.manage")
def opportunities_pipeline():
    ws = workspace_id()
    model = load_model(db(), ws)
    account_stages = frozenset(stage.key for stage in model.stages)
    if request.method == "GET":
        rows = stage_rows(pipeline_of(db(), ws))
        return _pipeline_page(rows, {}, model)
    data = unflatten(posted_rows().items())
    while isinstance(data.get("stages"), list) and data["stages"] and _blank(data["stages"][-1]):
        data["stages"].pop()  # the empty row the page offers for a new stage
    before = stage_rows(pipeline_of(db(), ws))
    try:
        saved = save_pipeline(db(), ws, data, account_stages, user_id=current_user.id)
    except ValidationError as exc:
        db().rollback()
        rows = data.get("stages") if isinstance(data.get("stages"), list) else []
        return _pipeline_page(rows, pipeline_errors(exc), model), 422
    after = stage_rows(saved)
    if after == before:
        flash(_("Nothing changed."), "success")
        return redirect(url_for("admin.opportunities_pipeline"))
    audit(db(), "pipeline.update", "pipeline", None, {"before": before, "after": after})
    db().commit()
    flash(_("Saved the pipeline."), "success")
    return redirect(url_for("admin.opportunities_pipeline"))


def _blank(row) -> bool:
    return isinstance(row, dict) and not any(
        str(row.get(name) or "").strip() for name in ("key", "name", "probability")
    )


def _pipeline_page(rows: list, errors: dict, model):
    ws = workspace_id()
    saved_keys = {stage.key for stage in pipeline_of(db(), ws)}
    blank = {"key": "", "name": "", "probability": "", "account_stage": "", "outcome": ""}
    blank["order"] = len(rows) + 1
    shown = [row if isinstance(row, dict) else {} for row in rows] + [blank]
    return render_template(
        "admin/opportunities_pipeline.html",
        rows=shown,
        values={name: shown_value(value) for name, value in flatten({"stages": shown}).items()},
        errors=errors,
        saved_keys=saved_keys,
        in_use=stages_in_use(db(), ws),
        account_stage_options=[
            ("", _("Leaves the account's stage")),
            *stage_names(model.stages).items(),
        ],
        outcome_options=list(presenters.OUTCOME_LABELS.items()),
    )
