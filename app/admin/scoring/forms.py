"""The scoring page's forms -> a proposed model: each section's posted inputs become the
model it proposes and the note its version gets (what changed, in words)."""

from dataclasses import dataclass, replace

from flask import request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError

from core.forms import flat_errors, flatten, row_index, unflatten
from crm.rule_config import INTERACTION_KINDS
from scoring.forms import (
    RULE_KINDS,
    load_mqa_rule,
    load_rule,
    load_stages,
    load_tiers,
    load_weights,
)
from scoring.model import Model

# What a score rule may count: what tag rules count, and every kind the shipped rules score.
SCORED_KINDS = tuple(dict.fromkeys([*INTERACTION_KINDS, *RULE_KINDS]))
PRESET_LABELS = {"top_down": _l("Top-down"), "bottom_up": _l("Bottom-up")}
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


def posted(lists: tuple[str, ...] = ()) -> dict:
    """The form as typed, by input name; the inputs in `lists` (checkboxes) as lists."""
    return {
        name: request.form.getlist(name) if name in lists else request.form.get(name, "")
        for name in request.form
        if name not in ("csrf_token", "action", "editing")
    }


def errors_of(exc: ValidationError) -> dict[str, list[str]]:
    """The schema's messages by input name, in the user's language."""
    return {
        name: [_(message) for message in messages]
        for name, messages in flat_errors(exc.messages).items()
    }


def propose_rule(current: Model, values: dict, key: str | None) -> Proposal:
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


def propose_weights(current: Model, values: dict, _editing=None) -> Proposal:
    proposed = replace(current, **load_weights(unflatten(values.items())))
    return Proposal(proposed, section_note(_("Weights"), current, proposed))


def propose_mqa(current: Model, values: dict, index: int | None) -> Proposal:
    rule = load_mqa_rule(unflatten(values.items()))
    rules = list(current.mqa_rules)
    if index is None:
        rules.append(rule)
        note = _("MQA rule “%(name)s” added", name=rule.name)
    else:
        rules[index] = rule
        note = _("MQA rule “%(name)s” edited", name=rule.name)
    return Proposal(replace(current, mqa_rules=tuple(rules)), note)


def propose_tiers(current: Model, values: dict, _editing=None) -> Proposal:
    proposed = replace(current, **load_tiers(unflatten(values.items())))
    return Proposal(proposed, section_note(_("Tiers and fit"), current, proposed))


def propose_stages(current: Model, values: dict, _editing=None) -> Proposal:
    proposed = replace(current, **load_stages(unflatten(values.items())))
    return Proposal(proposed, section_note(_("Stages and surge"), current, proposed))


# Each section's form, by the name the preview and the save use: (current, values, editing).
PROPOSALS = {
    "rule": propose_rule,
    "weights": propose_weights,
    "mqa": propose_mqa,
    "tiers": propose_tiers,
    "stages": propose_stages,
}


def rearranged(values: dict, action: str) -> dict:
    """The stages form after a row's button (add, up-N, down-N, delete-N), as typed."""
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


def section_note(section: str, before: Model, after: Model) -> str:
    """E.g. "Weights: Bottom-up preset, role weights, seniority weights"."""
    changed = list(document_changes(before.to_document(), after.to_document()))
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


def document_changes(before: dict, after: dict) -> dict[str, list]:
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
