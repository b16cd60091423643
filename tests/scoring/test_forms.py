"""The scoring model's sections as forms post them: every section of the shipped model
goes to its form and back unchanged, and mistakes come keyed by the inputs' names."""

import pytest
from marshmallow import ValidationError

from core.forms import flat_errors, flatten, unflatten
from scoring import forms
from scoring.model import Model, MqaRule


def load(loader, values: dict, **kwargs):
    return loader(unflatten(values.items()), **kwargs)


def mistakes(loader, values: dict, **kwargs) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        load(loader, values, **kwargs)
    return flat_errors(caught.value.messages)


def test_the_shipped_model_goes_through_its_forms_unchanged():
    model = Model()
    for rule in model.rules:
        assert load(forms.load_rule, flatten(forms.rule_form(rule))) == rule
    assert load(forms.load_weights, flatten(forms.weights_form(model))) == {
        "preset": model.preset,
        "weights": model.weights,
        "half_life_days": model.half_life_days,
        "scale": model.scale,
    }
    assert load(forms.load_mqa_rule, flatten(forms.mqa_form(MqaRule()))) == MqaRule()
    assert load(forms.load_tiers, flatten(forms.tiers_form(model))) == {
        "tiers": model.tiers,
        "fit": model.fit,
        "signals": model.signals,
    }
    assert load(forms.load_stages, flatten(forms.stages_form(model))) == {
        "stages": model.stages,
        "stage_rules": model.stage_rules,
        "surge": model.surge,
    }


def test_a_rule_form_reads_empty_inputs_as_no_cap_and_a_filter_row_as_a_condition():
    rule = load(
        forms.load_rule,
        {
            "key": "webinar",
            "kind": "live.watch",
            "points": " -2.5 ",
            "per_minute": "",
            "per_day": "",
            "where.0.property": "topic",
            "where.0.match": "contains",
            "where.0.value": "cloud",
            "where.1.property": "",
            "where.1.value": "",
            "signal": "",
            "csrf_token": "ignored",
        },
    )
    assert (rule.points, rule.per_minute, rule.per_day, rule.signal) == (-2.5, 0.0, None, None)
    assert rule.where == {"topic": "contains:cloud"}


def test_mistakes_are_keyed_by_the_inputs_names():
    assert mistakes(
        forms.load_rule,
        {"key": "follow", "kind": "x.y", "points": "nan", "where.1.property": "key"},
        taken_keys=["follow"],
    ) == {
        "key": ["Another rule has this key."],
        "kind": ["Not an interaction Harpoon records."],
        "points": ["Not a number."],
        "where.1.value": ["Required with a property."],
    }
    values = flatten(forms.tiers_form(Model()))
    values.update({"tiers.1.tier": "3", "fit.industries": ",".join(["x"] * 60)})
    assert mistakes(forms.load_tiers, values) == {
        "tiers.2.tier": ["This tier has a rule already."],
    }  # sixty times the same name is one name
    values["fit.industries"] = ",".join(f"行业{n}" for n in range(51))
    assert mistakes(forms.load_tiers, values)["fit.industries"] == ["At most 50 names."]


def test_stage_rules_must_point_at_stages_that_remain():
    values = flatten(forms.stages_form(Model()))
    values = {k: v for k, v in values.items() if not k.startswith("stages.")}
    values.update({"stages.0.key": "new", "stages.0.name": "New", "stages.1.key": "won"})
    assert mistakes(forms.load_stages, values) == {
        "stages.1.name": ["Required."],
        "stage_rules.aware": ["Not one of the stages: pick another, or none."],
        "stage_rules.engaged": ["Not one of the stages: pick another, or none."],
        "stage_rules.mqa": ["Not one of the stages: pick another, or none."],
    }
    values.update({"stage_rules.aware": "", "stage_rules.engaged": "won", "stage_rules.mqa": ""})
    values["stages.1.name"] = "Won"
    loaded = load(forms.load_stages, values)
    assert (loaded["stage_rules"].aware, loaded["stage_rules"].engaged) == (None, "won")


def test_the_lead_half_life_is_at_least_a_week_so_ledger_weights_stay_finite():
    values = flatten(forms.weights_form(Model()))
    values["half_life_days"] = "6.9"
    assert mistakes(forms.load_weights, values) == {
        "half_life_days": ["At least 7 days; empty for no decay."]
    }
    values["half_life_days"] = "7"
    assert load(forms.load_weights, values)["half_life_days"] == 7
