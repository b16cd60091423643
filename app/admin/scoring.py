"""Scoring: marketers edit the workspace's scoring model section by section (rules,
weights, MQA rules, tiers and fit, stages and surge), preview what a change does to the
accounts before saving it, and restore an older version.

Every save stores a new version of the whole model (scoring.engine.save_model) and asks
for the job that brings the scores in line: a rescore of history when the rules or the
lead half-life changed (the ledger depends on them), else a refresh of every account.
"""

import logging
from dataclasses import dataclass, field, replace
from math import ceil

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from marshmallow import ValidationError
from redis.exceptions import RedisError
from sqlalchemy import and_, func, select
from sqlalchemy.exc import IntegrityError

from app.admin import bp, db
from app.admin.access import audit, requires, workspace_id
from app.admin.contacts import INTERACTION_LABELS
from app.admin.labels import CONTACT_ROLE_LABELS, SENIORITY_LABELS
from app.extensions import harpoon
from core.forms import flat_errors, flatten, row_index, unflatten
from core.jobs import Job
from crm.rule_config import INTERACTION_KINDS
from crm.titles import SENIORITIES
from models import Account, Contact, ScoringModel, User, utcnow
from scoring.engine import Scorer, load_model, save_model, workspace_zone
from scoring.forms import (
    ROLES,
    RULE_KINDS,
    TIERS,
    load_mqa_rule,
    load_rule,
    load_stages,
    load_tiers,
    load_weights,
    mqa_form,
    rule_form,
    stages_form,
    tiers_form,
    weights_form,
)
from scoring.model import PRESETS, Model, MqaRule, ScoreRule

log = logging.getLogger(__name__)

TABS = {
    "rules": _l("Rules"),
    "weights": _l("Weights"),
    "mqa": _l("MQA rules"),
    "tiers": _l("Tiers & fit"),
    "stages": _l("Stages & surge"),
    "history": _l("History"),
}
RESCORE_JOB = Job.RESCORE_WORKSPACE  # asked for like a drain's follow-ups
REFRESH_JOB = Job.REFRESH_WORKSPACE_SCORES
HISTORY_PAGE_SIZE = 50
EXAMPLES = 10  # accounts a preview lists
PREVIEW_SAMPLE = 5000  # accounts a preview judges; a larger workspace is sampled evenly
# What a score rule may count: what tag rules count, and every kind the shipped rules score.
SCORED_KINDS = tuple(dict.fromkeys([*INTERACTION_KINDS, *RULE_KINDS]))
PRESET_LABELS = {"top_down": _l("Top-down"), "bottom_up": _l("Bottom-up")}
PRESET_HINTS = {
    "top_down": _l("Decision makers weigh more: the CEO, CIO and CTO, C-level and VPs."),
    "bottom_up": _l("The people who pick the product weigh more: engineers and IT managers."),
}
SIGNAL_LABELS = {
    "": _l("None"),
    "intent": _l("Intent (researching)"),
    "engagement": _l("Engagement (talking to us)"),
}
MATCH_LABELS = {"equals": _l("Equals"), "contains": _l("Contains")}
REQUIREMENT_LABELS = {
    "either": _l("Either"),
    "required": _l("Required"),
    "absent": _l("Must be absent"),
}
# A rule's settings by name, for the note of an edit.
RULE_FIELD_LABELS = {
    "kind": _l("interaction"),
    "where": _l("filter"),
    "points": _l("points"),
    "per_minute": _l("points per minute"),
    "per_day": _l("daily cap"),
    "per_contact": _l("cap per contact"),
    "max_points": _l("points cap"),
    "signal": _l("signal"),
}
# The parts of a section a note names, by their path in the model's document.
PART_LABELS = {
    "weights.roles": _l("role weights"),
    "weights.seniorities": _l("seniority weights"),
    "weights.breadth_bonus": _l("breadth bonus"),
    "weights.recency_half_life_days": _l("account recency half-life"),
    "half_life_days": _l("lead score half-life"),
    "tiers": _l("tier rules"),
    "fit": _l("fit criteria"),
    "signals": _l("signal windows"),
    "stages": _l("stages"),
    "stage_rules": _l("stage rules"),
    "surge": _l("surge"),
}


@dataclass(frozen=True)
class Proposal:
    """The model a form proposes, and the note its version gets."""

    model: Model
    note: str
    anchor: str = ""  # where the page scrolls to after the save


@dataclass(frozen=True)
class AccountState:
    name: str
    tier: int | None
    mqa: bool
    score: float


@dataclass
class Impact:
    """What a proposed model does to the workspace's accounts."""

    accounts: int
    rescored: bool  # the ledger was rebuilt (rules or half-life changed)
    sampled_from: int | None = None  # the workspace's accounts, when only a sample was judged
    tier_up: int = 0
    tier_down: int = 0
    mqa_in: int = 0
    mqa_out: int = 0
    mean_before: float = 0.0
    mean_after: float = 0.0
    examples: list[tuple[AccountState, AccountState]] = field(default_factory=list)


# ---- the page and its tabs ------------------------------------------------------------


@bp.get("/scoring")
@requires("scoring.manage")
def scoring():
    tab = request.args.get("tab", "rules")
    return _render_tab(tab if tab in TABS else "rules")


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
    builders = {
        "rules": _rules_context,
        "weights": _weights_context,
        "mqa": _mqa_context,
        "tiers": _tiers_context,
        "stages": _stages_context,
        "history": _history_context,
    }
    context = builders[tab](current, values)
    template = f"admin/scoring_tab_{tab}.html" if fragment else "admin/scoring.html"
    return render_template(
        template,
        tab=tab,
        tabs=TABS,
        in_force=None if fragment else _in_force(),
        errors=errors or {},
        preview=preview,
        **context,
    )


def _in_force():
    """The latest version (number, note, when, by whom), or None: the shipped model."""
    return (
        db()
        .execute(
            select(ScoringModel.version, ScoringModel.note, ScoringModel.created_at, User.name)
            .outerjoin(User, User.id == ScoringModel.created_by)
            .where(ScoringModel.workspace_id == workspace_id())
            .order_by(ScoringModel.version.desc())
            .limit(1)
        )
        .first()
    )


def _rules_context(current: Model, _values) -> dict:
    return {
        "rules": current.rules,
        "kind_labels": INTERACTION_LABELS,
        "signal_labels": SIGNAL_LABELS,
    }


def _weights_context(current: Model, values: dict | None) -> dict:
    presets = {}
    for name in PRESETS:
        filled = flatten(weights_form(current, name))
        presets[name] = {k: v for k, v in filled.items() if k not in ("preset", "half_life_days")}
    return {
        "values": flatten(weights_form(current)) if values is None else values,
        "roles": ROLES,
        "role_labels": CONTACT_ROLE_LABELS,
        "seniorities": SENIORITIES,
        "seniority_labels": SENIORITY_LABELS,
        "presets": presets,
        "preset_labels": PRESET_LABELS,
        "preset_hints": PRESET_HINTS,
    }


def _mqa_context(current: Model, _values) -> dict:
    return {"mqa_rules": current.mqa_rules, "seniority_labels": SENIORITY_LABELS}


def _tiers_context(current: Model, values: dict | None) -> dict:
    return {
        "values": flatten(tiers_form(current)) if values is None else values,
        "tier_rows": range(len(TIERS)),
        "tier_options": [
            ("", _("— not used —")),
            *((str(tier), _("Tier %(tier)s", tier=tier)) for tier in TIERS),
        ],
        "requirement_labels": REQUIREMENT_LABELS,
    }


def _stages_context(current: Model, values: dict | None) -> dict:
    ws = workspace_id()
    values = flatten(stages_form(current)) if values is None else values
    rows = range(_row_count(values, "stages"))
    keys = [(values.get(f"stages.{i}.key", ""), values.get(f"stages.{i}.name", "")) for i in rows]
    counts = {
        subject: dict(
            db()
            .execute(
                select(model.stage, func.count())
                .where(model.workspace_id == ws, model.stage.is_not(None))
                .group_by(model.stage)
            )
            .all()
        )
        for subject, model in (("accounts", Account), ("contacts", Contact))
    }
    return {
        "values": values,
        "stage_rows": rows,
        # Saved stages keep their key (accounts and contacts hold it); new ones take one.
        "saved_keys": {stage.key for stage in current.stages},
        "rule_options": {
            rule: _stage_options(keys, values.get(f"stage_rules.{rule}", ""))
            for rule in ("aware", "engaged", "mqa")
        },
        "stage_counts": counts,
    }


def _stage_options(keys: list[tuple[str, str]], chosen: str) -> list[tuple[str, str]]:
    """The stages as typed, for a stage rule's target; a target no longer among them shows,
    marked, so the rule's error has something to point at."""
    options = [("", _("— nobody moves —")), *((key, name or key) for key, name in keys if key)]
    if chosen and chosen not in {key for key, _name in keys}:
        options.append((chosen, _("%(key)s (not a stage)", key=chosen)))
    return options


def _history_context(current: Model, _values) -> dict:
    ws = workspace_id()
    total = db().scalar(
        select(func.count()).select_from(ScoringModel).where(ScoringModel.workspace_id == ws)
    )
    pages = max(1, ceil(total / HISTORY_PAGE_SIZE))
    page = min(max(request.args.get("page", 1, type=int), 1), pages)
    versions = db().execute(
        select(ScoringModel.version, ScoringModel.note, ScoringModel.created_at, User.name)
        .outerjoin(User, User.id == ScoringModel.created_by)
        .where(ScoringModel.workspace_id == ws)
        .order_by(ScoringModel.version.desc())
        .limit(HISTORY_PAGE_SIZE)
        .offset((page - 1) * HISTORY_PAGE_SIZE)
    )
    return {"versions": list(versions), "page": page, "pages": pages}


def _row_count(values: dict, prefix: str) -> int:
    """How many rows a form's values hold under `prefix` ("stages.3.key" is row 3)."""
    indexes = [row_index(name.split(".")[1]) for name in values if name.startswith(f"{prefix}.")]
    return max((index for index in indexes if index is not None), default=-1) + 1


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
    values = _posted()
    try:
        proposal = _propose_rule(current, values, key)
    except ValidationError as exc:
        return _rule_page(current, rule, values, _errors(exc))
    return _save(current, proposal, "rules")


def _rule_page(current, rule, values, errors=None, preview=None, fragment=False):
    kinds = [*SCORED_KINDS, *(r.kind for r in current.rules if r.kind not in SCORED_KINDS)]
    return render_template(
        "admin/scoring_rule_form.html" if fragment else "admin/scoring_rule.html",
        rule=rule,
        values=values,
        errors=errors or {},
        preview=preview,
        kind_options=[(kind, _kind_option(kind)) for kind in kinds],
        signal_labels=SIGNAL_LABELS,
        match_labels=MATCH_LABELS,
        filter_rows=range(max(_row_count(values, "where"), 1)),
    )


def _kind_option(kind: str) -> str:
    return f"{INTERACTION_LABELS[kind]} · {kind}" if kind in INTERACTION_LABELS else kind


def _propose_rule(current: Model, values: dict, key: str | None) -> Proposal:
    data = unflatten(values.items())
    if key is not None:
        data["key"] = key  # a rule keeps its key: the ledger holds its points by it
    rule = load_rule(
        data,
        kinds={*SCORED_KINDS, *(r.kind for r in current.rules)},
        taken_keys=[r.key for r in current.rules if r.key != key],
    )
    anchor = f"rule-{rule.key}"
    if key is None:
        rules = (*current.rules, rule)
        return Proposal(
            replace(current, rules=rules), _("Rule %(key)s added", key=rule.key), anchor
        )
    before = current.rule(key)
    changed = [
        str(label)
        for name, label in RULE_FIELD_LABELS.items()
        if getattr(before, name) != getattr(rule, name)
    ]
    rules = tuple(rule if r.key == key else r for r in current.rules)
    note = _("Rule %(key)s edited: %(parts)s", key=key, parts=", ".join(changed))
    return Proposal(replace(current, rules=rules), note, anchor)


# ---- weights --------------------------------------------------------------------------


@bp.post("/scoring/weights")
@requires("scoring.manage")
def scoring_weights():
    current = load_model(db(), workspace_id())
    values = _posted()
    preset = request.form.get("preset")
    if request.form.get("action") == "fill" and preset in PRESETS:  # the preset without JS
        filled = flatten(weights_form(current, preset))
        return _render_tab(
            "weights",
            current,
            values={**filled, "half_life_days": values.get("half_life_days", "")},
        )
    return _save_section("weights", current, values)


def _propose_weights(current: Model, values: dict, _editing=None) -> Proposal:
    proposed = replace(current, **load_weights(unflatten(values.items())))
    return Proposal(proposed, _section_note(_("Weights"), current, proposed))


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
    values = _posted(lists=("tiers",))
    try:
        proposal = _propose_mqa(current, values, index)
    except ValidationError as exc:
        return _mqa_page(rule, index, values, _errors(exc))
    return _save(current, proposal, "mqa")


def _mqa_page(rule, index, values, errors=None, preview=None, fragment=False):
    return render_template(
        "admin/scoring_mqa_form.html" if fragment else "admin/scoring_mqa.html",
        rule=rule,
        index=index,
        values=values,
        errors=errors or {},
        preview=preview,
        seniority_options=[(level, SENIORITY_LABELS[level]) for level in SENIORITIES],
        tiers=TIERS,
    )


def _propose_mqa(current: Model, values: dict, index: int | None) -> Proposal:
    rule = load_mqa_rule(unflatten(values.items()))
    rules = list(current.mqa_rules)
    if index is None:
        rules.append(rule)
        note = _("MQA rule “%(name)s” added", name=rule.name)
    else:
        rules[index] = rule
        note = _("MQA rule “%(name)s” edited", name=rule.name)
    return Proposal(replace(current, mqa_rules=tuple(rules)), note)


# ---- tiers and fit; stages and surge ----------------------------------------------------


@bp.post("/scoring/tiers")
@requires("scoring.manage")
def scoring_tiers():
    return _save_section("tiers", load_model(db(), workspace_id()), _posted())


def _propose_tiers(current: Model, values: dict, _editing=None) -> Proposal:
    proposed = replace(current, **load_tiers(unflatten(values.items())))
    return Proposal(proposed, _section_note(_("Tiers and fit"), current, proposed))


@bp.post("/scoring/stages")
@requires("scoring.manage")
def scoring_stages():
    """Saves; or, with a row's button (add, up, down, delete), shows the rearranged list."""
    current = load_model(db(), workspace_id())
    values = _posted()
    action = request.form.get("action", "save")
    if action != "save":
        return _render_tab("stages", current, values=_rearranged(values, action))
    return _save_section("stages", current, values)


def _rearranged(values: dict, action: str) -> dict:
    data = unflatten(values.items())
    stages = [row for row in data.get("stages", []) if isinstance(row, dict)]
    verb, _sep, position = action.partition("-")
    index = row_index(position)
    index = -1 if index is None else index
    if verb == "add":
        stages.append({"key": "", "name": ""})
    elif verb == "delete" and 0 <= index < len(stages):
        stages.pop(index)
    elif verb == "up" and 0 < index < len(stages):
        stages[index - 1], stages[index] = stages[index], stages[index - 1]
    elif verb == "down" and 0 <= index < len(stages) - 1:
        stages[index], stages[index + 1] = stages[index + 1], stages[index]
    rest = {name: value for name, value in values.items() if not name.startswith("stages.")}
    return {**rest, **flatten({"stages": stages})}


def _propose_stages(current: Model, values: dict, _editing=None) -> Proposal:
    proposed = replace(current, **load_stages(unflatten(values.items())))
    return Proposal(proposed, _section_note(_("Stages and surge"), current, proposed))


def _save_section(section: str, current: Model, values: dict):
    try:
        proposal = PROPOSALS[section](current, values, None)
    except ValidationError as exc:
        return _render_tab(section, current, values=values, errors=_errors(exc))
    return _save(current, proposal, section)


# ---- history ----------------------------------------------------------------------------


@bp.post("/scoring/history/<int:version>/restore")
@requires("scoring.manage")
def scoring_restore(version: int):
    document = db().scalar(
        select(ScoringModel.document).where(
            ScoringModel.workspace_id == workspace_id(), ScoringModel.version == version
        )
    )
    current = load_model(db(), workspace_id())
    if version == 0:  # the model Harpoon ships with
        return _save(current, Proposal(Model(), _("Restored the shipped model")), "history")
    if document is None:
        abort(404)
    note = _("Restored version %(version)s", version=version)
    return _save(current, Proposal(Model.from_document(document), note), "history")


# ---- preview ----------------------------------------------------------------------------

PROPOSALS = {
    "rule": _propose_rule,
    "weights": _propose_weights,
    "mqa": _propose_mqa,
    "tiers": _propose_tiers,
    "stages": _propose_stages,
}


@bp.post("/scoring/preview/<section>")
@requires("scoring.manage")
def scoring_preview(section: str):
    """The section's form as posted, with what it would do to the accounts (or its
    mistakes); nothing is saved. htmx swaps the form in, without JavaScript it is a page."""
    if section not in PROPOSALS:
        abort(404)
    current = load_model(db(), workspace_id())
    editing = _editing(section, current)
    values = _posted(lists=("tiers",) if section == "mqa" else ())
    try:
        proposal = PROPOSALS[section](current, values, editing)
    except ValidationError as exc:
        errors, impact = _errors(exc), None
    else:
        errors, impact = {}, _impact(current, proposal.model)
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


def _impact(current: Model, proposed: Model) -> Impact:
    """Score the workspace under `proposed` inside a savepoint, read the accounts' tier,
    MQA and score, and roll everything back. A workspace of more than PREVIEW_SAMPLE
    accounts is judged on an even sample of them, so the preview stays a request."""
    session, ws = db(), workspace_id()
    ids = list(
        session.scalars(select(Account.id).where(Account.workspace_id == ws).order_by(Account.id))
    )
    sample = None
    if len(ids) > PREVIEW_SAMPLE:
        step = len(ids) / PREVIEW_SAMPLE
        sample = [ids[int(n * step)] for n in range(PREVIEW_SAMPLE)]
    before = _account_states(sample)
    rescored = _rescores(current, proposed)
    scorer = Scorer(session, ws, proposed, workspace_zone(session, ws), utcnow())
    savepoint = session.begin_nested()
    try:
        if sample is None and rescored:
            scorer.rescore_history()
        elif sample is None:
            scorer.refresh_workspace()
        else:
            if rescored:
                contacts = session.scalars(
                    select(Contact.id).where(
                        Contact.account_id.in_(sample), Contact.merged_into_id.is_(None)
                    )
                )
                scorer.rescore_contacts(list(contacts))
            scorer.refresh_accounts(sample)
        after = _account_states(sample)
    finally:
        savepoint.rollback()
        session.rollback()  # the request's transaction too: no lock outlives the preview
    impact = _compare(before, after, rescored)
    impact.sampled_from = len(ids) if sample is not None else None
    return impact


def _account_states(sample: list[int] | None) -> dict[int, AccountState]:
    scope = Account.workspace_id == workspace_id()
    rows = db().execute(
        select(Account.id, Account.name, Account.tier, Account.mqa, Account.score).where(
            scope if sample is None else and_(scope, Account.id.in_(sample))
        )
    )
    return {
        row.id: AccountState(row.name, row.tier, bool(row.mqa), row.score or 0.0) for row in rows
    }


def _compare(
    before: dict[int, AccountState], after: dict[int, AccountState], rescored: bool
) -> Impact:
    impact = Impact(accounts=len(before), rescored=rescored)
    changed = []
    for account_id, old in before.items():
        new = after.get(account_id, old)
        rank_old, rank_new = _tier_rank(old.tier), _tier_rank(new.tier)
        impact.tier_up += rank_new < rank_old
        impact.tier_down += rank_new > rank_old
        impact.mqa_in += new.mqa and not old.mqa
        impact.mqa_out += old.mqa and not new.mqa
        moved = old.tier != new.tier or old.mqa != new.mqa
        if moved or abs(new.score - old.score) >= 0.5:
            changed.append((old, new, (not moved, -abs(new.score - old.score), old.name)))
    if before:
        impact.mean_before = sum(s.score for s in before.values()) / len(before)
        impact.mean_after = sum(after.get(i, s).score for i, s in before.items()) / len(before)
    # Tier and MQA moves first, then the biggest score changes.
    changed.sort(key=lambda change: change[2])
    impact.examples = [(old, new) for old, new, _order in changed[:EXAMPLES]]
    return impact


def _tier_rank(tier: int | None) -> int:
    """Tier 1 ranks first; no tier ranks after tier 3."""
    return tier if tier is not None else len(TIERS) + 1


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
    changes = _diff(current.to_document(), proposal.model.to_document())
    audit(
        db(), "scoring_model.save", "scoring_model", row.version, {"note": proposal.note, **changes}
    )
    db().commit()
    _recalculate(current, proposal.model, row.version, proposal.note)
    return redirect(target)


def _rescores(before: Model, after: Model) -> bool:
    """The ledger depends on the rules and the lead half-life: a change rebuilds it."""
    return before.rules != after.rules or before.half_life_days != after.half_life_days


def _recalculate(before: Model, after: Model, version: int, note: str) -> None:
    ws = workspace_id()
    job = RESCORE_JOB if _rescores(before, after) else REFRESH_JOB
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


def _section_note(section: str, before: Model, after: Model) -> str:
    """E.g. "Weights: Bottom-up preset, role weights, seniority weights"."""
    changed = list(_diff(before.to_document(), after.to_document()))
    parts = [
        str(label)
        for prefix, label in PART_LABELS.items()
        if any(path == prefix or path.startswith(f"{prefix}.") for path in changed)
    ]
    if before.preset != after.preset:
        parts.insert(0, _("%(preset)s preset", preset=PRESET_LABELS[after.preset]))
    return (
        _("%(section)s: %(parts)s", section=section, parts=", ".join(parts)) if parts else section
    )


def _diff(before: dict, after: dict) -> dict[str, list]:
    """What changed between two documents, by dotted path: [before, after]. Rules are
    matched by key; other lists compare whole."""

    def keyed(doc: dict) -> dict:
        return {**doc, "rules": {rule["key"]: rule for rule in doc.get("rules", ())}}

    def leaves(old, new, path: str) -> dict:
        if isinstance(old, dict) and isinstance(new, dict):
            changes = {}
            for key in dict.fromkeys([*old, *new]):
                changes.update(leaves(old.get(key), new.get(key), f"{path}.{key}" if path else key))
            return changes
        return {} if old == new else {path: [old, new]}

    return leaves(keyed(before), keyed(after), "")


# ---- forms ------------------------------------------------------------------------------


def _posted(lists: tuple[str, ...] = ()) -> dict:
    """The form as typed, by input name; the inputs in `lists` (checkboxes) as lists."""
    return {
        name: request.form.getlist(name) if name in lists else request.form.get(name, "")
        for name in request.form
        if name not in ("csrf_token", "action", "editing")
    }


def _errors(exc: ValidationError) -> dict[str, list[str]]:
    """The schema's messages by input name, in the user's language."""
    return {
        name: [_(message) for message in messages]
        for name, messages in flat_errors(exc.messages).items()
    }
