"""What the scoring page's tabs and rule pages show: the model in force (or the form as
typed) laid out as inputs, options and labels."""

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.admin.contacts.presenters import INTERACTION_LABELS
from app.admin.labels import CONTACT_ROLE_LABELS, SENIORITY_LABELS
from app.admin.lookups import Page
from app.admin.scoring.forms import PRESET_LABELS, SCORED_KINDS
from core.forms import flatten, row_index
from crm.titles import SENIORITIES
from scoring.forms import ROLES, TIERS, stages_form, tiers_form, weights_form
from scoring.model import PRESETS, Model
from scoring.outcomes import WINDOW_DAYS
from scoring.wins import MIN_OUTCOMES, Report, summarise

TABS = {
    "rules": _l("Rules"),
    "weights": _l("Weights"),
    "mqa": _l("MQA rules"),
    "tiers": _l("Tiers & fit"),
    "stages": _l("Stages & surge"),
    "wins": _l("What predicts wins"),
    "history": _l("History"),
}
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


def rules_context(current: Model, _values) -> dict:
    return {
        "rules": current.rules,
        "kind_labels": INTERACTION_LABELS,
        "signal_labels": SIGNAL_LABELS,
    }


def weights_context(current: Model, values: dict | None) -> dict:
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


def mqa_context(current: Model, _values) -> dict:
    return {"mqa_rules": current.mqa_rules, "seniority_labels": SENIORITY_LABELS}


def tiers_context(current: Model, values: dict | None) -> dict:
    return {
        "values": flatten(tiers_form(current)) if values is None else values,
        "tier_rows": range(len(TIERS)),
        "tier_options": [
            ("", _("— not used —")),
            *((str(tier), _("Tier %(tier)s", tier=tier)) for tier in TIERS),
        ],
        "requirement_labels": REQUIREMENT_LABELS,
    }


def stages_context(current: Model, values: dict | None, counts: dict) -> dict:
    """`counts`: the accounts and contacts at each stage key (scoring.metrics.stage_counts)."""
    values = flatten(stages_form(current)) if values is None else values
    rows = range(row_count(values, "stages"))
    keys = [(values.get(f"stages.{i}.key", ""), values.get(f"stages.{i}.name", "")) for i in rows]
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


def history_context(versions: Page) -> dict:
    return {"versions": versions.rows, "page": versions.page, "pages": versions.pages}


def row_count(values: dict, prefix: str) -> int:
    """How many rows a form's values hold under `prefix` ("stages.3.key" is row 3)."""
    indexes = [row_index(name.split(".")[1]) for name in values if name.startswith(f"{prefix}.")]
    return max((index for index in indexes if index is not None), default=-1) + 1


def rule_page_context(current: Model, values: dict) -> dict:
    """The rule form's options: every kind a rule may count (and any the model holds)."""
    kinds = [*SCORED_KINDS, *(r.kind for r in current.rules if r.kind not in SCORED_KINDS)]
    return {
        "kind_options": [(kind, _kind_option(kind)) for kind in kinds],
        "signal_labels": SIGNAL_LABELS,
        "match_labels": MATCH_LABELS,
        "filter_rows": range(max(row_count(values, "where"), 1)),
    }


def _kind_option(kind: str) -> str:
    return f"{INTERACTION_LABELS[kind]} · {kind}" if kind in INTERACTION_LABELS else kind


def score_rule_labels(rules) -> dict[str, str]:
    """Each rule's key -> what people read for it: its interaction's label (as the rules
    tab shows it), with its filter's values (`点击菜单 · PRICING`); the key for a kind
    without a label."""
    labels = {}
    for rule in rules:
        label = str(INTERACTION_LABELS.get(rule.kind, rule.key))
        values = [value.removeprefix("contains:") for value in rule.where.values()]
        labels[rule.key] = " · ".join([label, *values])
    return labels


def mqa_page_context() -> dict:
    return {
        "seniority_options": [(level, SENIORITY_LABELS[level]) for level in SENIORITIES],
        "tiers": TIERS,
    }


def wins_context(current: Model, report: Report) -> dict:
    """The wins report's three tables (score rules, MQA rules, tiers), its counts and the
    fitted weights, each row labelled as people read it."""
    rule_labels = score_rule_labels(current.rules)
    rules = summarise(report.comparisons, "rule")
    return {
        "report": report,
        "window_days": WINDOW_DAYS,
        "sections": [
            ("rule", _("Score rules"), [c for c in rules if c.accounts]),
            ("mqa", _("MQA rules"), [c for c in report.comparisons if c.kind == "mqa"]),
            ("tier", _("Tiers"), [c for c in report.comparisons if c.kind == "tier"]),
        ],
        # Rules no account earned points from: one line, not a table of dashes.
        "unseen_rules": [rule_labels.get(c.key, c.key) for c in rules if not c.accounts],
        "signal_label": lambda c: (
            rule_labels.get(c.key, c.key)
            if c.kind == "rule"
            else _("Tier %(tier)s", tier=c.key)
            if c.kind == "tier"
            else c.key
        ),
        "fit": report.fit,
        "min_outcomes": MIN_OUTCOMES,
        "rule_labels": rule_labels,
    }
