"""The scoring page's routes: each section's form, its preview, the save and the restore."""

import logging
from dataclasses import replace

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from marshmallow import ValidationError
from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.lookups import paginate
from app.admin.scoring import presenters
from app.admin.scoring.forms import (
    PROPOSALS,
    Proposal,
    document_changes,
    errors_of,
    posted,
    propose_mqa,
    propose_rule,
    rearranged,
)
from app.extensions import harpoon
from core.forms import flatten
from core.jobs import Job
from models import utcnow
from scoring.engine import load_model, save_model
from scoring.forms import mqa_form, rule_form, weights_form
from scoring.metrics import stage_counts
from scoring.model import PRESETS, Model, MqaRule, ScoreRule
from scoring.outcomes import outcome_facts
from scoring.preview import Impact, preview_impact, rescores
from scoring.versions import version_document, version_in_force, versions_query
from scoring.wins import Report, report

log = logging.getLogger(__name__)

RESCORE_JOB = Job.RESCORE_WORKSPACE  # asked for like a drain's follow-ups
REFRESH_JOB = Job.REFRESH_WORKSPACE_SCORES
HISTORY_PAGE_SIZE = 50


# ---- the page and its tabs ------------------------------------------------------------


@bp.get("/scoring")
@requires("scoring.manage")
def scoring():
    tab = request.args.get("tab", "rules")
    return _render_tab(tab if tab in presenters.TABS else "rules")


def _render_tab(
    tab: str,
    current: Model | None = None,
    *,
    values: dict | None = None,
    errors: dict | None = None,
    preview: Impact | None = None,
    fragment: bool = False,
):
    """The page on a tab; `fragment`: the tab's form alone (htmx swaps it in)."""
    current = current or load_model(db(), workspace_id())
    context = _tab_context(tab, current, values)
    template = f"admin/scoring_tab_{tab}.html" if fragment else "admin/scoring.html"
    return render_template(
        template,
        tab=tab,
        tabs=presenters.TABS,
        in_force=None if fragment else version_in_force(db(), workspace_id()),
        errors=errors or {},
        preview=preview,
        **context,
    )


def _tab_context(tab: str, current: Model, values: dict | None) -> dict:
    if tab == "stages":
        return presenters.stages_context(current, values, stage_counts(db(), workspace_id()))
    if tab == "history":
        versions = paginate(versions_query(workspace_id()), HISTORY_PAGE_SIZE)
        return presenters.history_context(versions)
    if tab == "wins":
        return presenters.wins_context(current, _wins_report(current))
    builders = {
        "rules": presenters.rules_context,
        "weights": presenters.weights_context,
        "mqa": presenters.mqa_context,
        "tiers": presenters.tiers_context,
    }
    return builders[tab](current, values)


# ---- score rules ------------------------------------------------------------------------


@bp.route("/scoring/rules/new", methods=["GET", "POST"])
@requires("scoring.manage")
def scoring_rule_new():
    return _rule_form(None)


@bp.route("/scoring/rules/<key>/edit", methods=["GET", "POST"])
@requires("scoring.manage")
def scoring_rule_edit(key: str):
    return _rule_form(key)


@bp.post("/scoring/rules/<key>/delete")
@requires("scoring.manage")
def scoring_rule_delete(key: str):
    current = load_model(db(), workspace_id())
    _rule_or_404(current, key)
    rules = tuple(rule for rule in current.rules if rule.key != key)
    return _save(
        current, Proposal(replace(current, rules=rules), _("Rule %(key)s deleted", key=key))
    )


def _rule_or_404(current: Model, key: str | None) -> ScoreRule | None:
    if key is None:
        return None
    rule = current.rule(key)
    if rule is None:
        abort(404)
    return rule


def _rule_form(key: str | None):
    current = load_model(db(), workspace_id())
    rule = _rule_or_404(current, key)
    if request.method == "GET":
        return _rule_page(current, rule, flatten(rule_form(rule)))
    values = posted()
    try:
        proposal = propose_rule(current, values, key)
    except ValidationError as exc:
        return _rule_page(current, rule, values, errors_of(exc))
    return _save(current, proposal, "rules")


def _rule_page(current, rule, values, errors=None, preview=None, fragment=False):
    return render_template(
        "admin/scoring_rule_form.html" if fragment else "admin/scoring_rule.html",
        rule=rule,
        values=values,
        errors=errors or {},
        preview=preview,
        **presenters.rule_page_context(current, values),
    )


# ---- weights --------------------------------------------------------------------------


@bp.post("/scoring/weights")
@requires("scoring.manage")
def scoring_weights():
    current = load_model(db(), workspace_id())
    values = posted()
    preset = request.form.get("preset")
    if request.form.get("action") == "fill" and preset in PRESETS:  # the preset without JS
        filled = flatten(weights_form(current, preset))
        return _render_tab(
            "weights",
            current,
            values={**filled, "half_life_days": values.get("half_life_days", "")},
        )
    return _save_section("weights", current, values)


# ---- MQA rules --------------------------------------------------------------------------


@bp.route("/scoring/mqa/new", methods=["GET", "POST"])
@requires("scoring.manage")
def scoring_mqa_new():
    return _mqa_form(None)


@bp.route("/scoring/mqa/<int:index>/edit", methods=["GET", "POST"])
@requires("scoring.manage")
def scoring_mqa_edit(index: int):
    return _mqa_form(index)


@bp.post("/scoring/mqa/<int:index>/delete")
@requires("scoring.manage")
def scoring_mqa_delete(index: int):
    current = load_model(db(), workspace_id())
    rule = _mqa_or_404(current, index)
    rules = current.mqa_rules[:index] + current.mqa_rules[index + 1 :]
    note = _("MQA rule “%(name)s” deleted", name=rule.name)
    return _save(current, Proposal(replace(current, mqa_rules=rules), note), "mqa")


def _mqa_or_404(current: Model, index: int | None) -> MqaRule | None:
    if index is None:
        return None
    if not 0 <= index < len(current.mqa_rules):
        abort(404)
    return current.mqa_rules[index]


def _mqa_form(index: int | None):
    current = load_model(db(), workspace_id())
    rule = _mqa_or_404(current, index)
    if request.method == "GET":
        return _mqa_page(rule, index, flatten(mqa_form(rule)))
    values = posted(lists=("tiers",))
    try:
        proposal = propose_mqa(current, values, index)
    except ValidationError as exc:
        return _mqa_page(rule, index, values, errors_of(exc))
    return _save(current, proposal, "mqa")


def _mqa_page(rule, index, values, errors=None, preview=None, fragment=False):
    return render_template(
        "admin/scoring_mqa_form.html" if fragment else "admin/scoring_mqa.html",
        rule=rule,
        index=index,
        values=values,
        errors=errors or {},
        preview=preview,
        **presenters.mqa_page_context(),
    )


# ---- tiers and fit; stages and surge ----------------------------------------------------


@bp.post("/scoring/tiers")
@requires("scoring.manage")
def scoring_tiers():
    return _save_section("tiers", load_model(db(), workspace_id()), posted())


@bp.post("/scoring/stages")
@requires("scoring.manage")
def scoring_stages():
    """Saves; or, with a row's button (add, up, down, delete), shows the rearranged list."""
    current = load_model(db(), workspace_id())
    values = posted()
    action = request.form.get("action", "save")
    if action != "save":
        return _render_tab("stages", current, values=rearranged(values, action))
    return _save_section("stages", current, values)


def _save_section(section: str, current: Model, values: dict):
    try:
        proposal = PROPOSALS[section](current, values, None)
    except ValidationError as exc:
        return _render_tab(section, current, values=values, errors=errors_of(exc))
    return _save(current, proposal, section)


# ---- what predicts wins ------------------------------------------------------------------


def _wins_report(current: Model) -> Report:
    """Four grouped queries and, with enough outcomes, a logistic regression: a request's
    work at the demo's size (see the report's timing note)."""
    return report(current, outcome_facts(db(), workspace_id(), current, utcnow()))


@bp.post("/scoring/wins/<action>")
@requires("scoring.manage")
def scoring_wins(action: str):
    """Preview the fitted weights' impact, or adopt them as a new version. The fit is made
    again from today's outcomes: what is adopted is what the page shows."""
    if action not in ("preview", "adopt"):
        abort(404)
    current = load_model(db(), workspace_id())
    fitted = _wins_report(current)
    if not fitted.fit.fitted:
        flash(
            _(
                "Not enough outcomes yet: %(won)s won, %(lost)s lost.",
                won=fitted.fit.won,
                lost=fitted.fit.lost,
            ),
            "error",
        )
        return redirect(url_for("admin.scoring", tab="wins"))
    proposed = fitted.fit.model(current)
    if action == "adopt":
        note = _(
            "Weights fitted on %(won)s won and %(lost)s lost deals",
            won=fitted.fit.won,
            lost=fitted.fit.lost,
        )
        return _save(current, Proposal(proposed, note), "wins")
    impact = preview_impact(db(), workspace_id(), current, proposed)
    return render_template(
        "admin/scoring.html",
        tab="wins",
        tabs=presenters.TABS,
        in_force=version_in_force(db(), workspace_id()),
        errors={},
        preview=impact,
        **presenters.wins_context(current, fitted),
    )


# ---- history ----------------------------------------------------------------------------


@bp.post("/scoring/history/<int:version>/restore")
@requires("scoring.manage")
def scoring_restore(version: int):
    document = version_document(db(), workspace_id(), version)
    current = load_model(db(), workspace_id())
    if version == 0:  # the model Harpoon ships with
        return _save(current, Proposal(Model(), _("Restored the shipped model")), "history")
    if document is None:
        abort(404)
    note = _("Restored version %(version)s", version=version)
    return _save(current, Proposal(Model.from_document(document), note), "history")


# ---- preview ----------------------------------------------------------------------------


@bp.post("/scoring/preview/<section>")
@requires("scoring.manage")
def scoring_preview(section: str):
    """The section's form as posted, with what it would do to the accounts (or its
    mistakes); nothing is saved. htmx swaps the form in, without JavaScript it is a page."""
    if section not in PROPOSALS:
        abort(404)
    current = load_model(db(), workspace_id())
    editing = _editing(section, current)
    values = posted(lists=("tiers",) if section == "mqa" else ())
    try:
        proposal = PROPOSALS[section](current, values, editing)
    except ValidationError as exc:
        errors, impact = errors_of(exc), None
    else:
        errors = {}
        impact = preview_impact(db(), workspace_id(), current, proposal.model)
    fragment = bool(request.headers.get("HX-Request"))
    if section == "rule":
        page = _rule_page(
            current, current.rule(editing) if editing else None, values, errors, impact, fragment
        )
    elif section == "mqa":
        page = _mqa_page(_mqa_or_404(current, editing), editing, values, errors, impact, fragment)
    else:
        page = _render_tab(
            section, current, values=values, errors=errors, preview=impact, fragment=fragment
        )
    response = make_response(page)
    response.vary.add("HX-Request")
    return response


def _editing(section: str, current: Model):
    """Which rule the previewed form edits (its key, or its position for an MQA rule);
    None for a new one."""
    editing = request.form.get("editing", "").strip()
    if not editing or section not in ("rule", "mqa"):
        return None
    if section == "rule":
        _rule_or_404(current, editing)
        return editing
    if not (editing.isascii() and editing.isdigit()):
        abort(404)
    _mqa_or_404(current, int(editing))
    return int(editing)


# ---- saving -----------------------------------------------------------------------------


def _save(current: Model, proposal: Proposal, tab: str = "rules"):
    """A new version, its audit entry, then the job that brings the scores in line."""
    ws = workspace_id()
    target = url_for("admin.scoring", tab=tab) + (f"#{proposal.anchor}" if proposal.anchor else "")
    if proposal.model == current:
        flash(_("Nothing changed: no new version was saved."))
        return redirect(target)
    try:
        row = save_model(db(), ws, proposal.model, proposal.note, current_user.id)
    except IntegrityError:  # another save took this version number a moment ago
        db().rollback()
        flash(
            _("Someone saved the model at the same moment: nothing was saved, try again."), "error"
        )
        return redirect(target)
    changes = document_changes(current.to_document(), proposal.model.to_document())
    audit(
        db(), "scoring_model.save", "scoring_model", row.version, {"note": proposal.note, **changes}
    )
    db().commit()
    _recalculate(current, proposal.model, row.version, proposal.note)
    return redirect(target)


def _recalculate(before: Model, after: Model, version: int, note: str) -> None:
    ws = workspace_id()
    job = RESCORE_JOB if rescores(before, after) else REFRESH_JOB
    try:
        # A burst of saves makes one job; a save while it runs makes the next.
        harpoon().queue.enqueue_followups({(job, ws)})
    except RedisError as exc:
        log.warning("%s for workspace %s could not be queued: %s", job, ws, exc)
        flash(
            _(
                "Version %(version)s saved (%(note)s), but the job queue is unreachable: "
                "the scores do not follow it yet.",
                version=version,
                note=note,
            ),
            "error",
        )
        return
    if job == RESCORE_JOB:
        message = _(
            "Version %(version)s saved (%(note)s): every contact's score is being rebuilt "
            "from their history.",
            version=version,
            note=note,
        )
    else:
        message = _(
            "Version %(version)s saved (%(note)s): every account's score, tier, MQA and "
            "stage is being recalculated.",
            version=version,
            note=note,
        )
    flash(message, "success")
