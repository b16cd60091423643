"""The scoring model's sections as forms post them: every section of the shipped model
goes to its form and back unchanged, and mistakes come keyed by the inputs' names."""

import pytest
from marshmallow import ValidationError

from scoring import config
from scoring.model import Model, MqaRule


def load(loader, values: dict, **kwargs):
    return loader(config.unflatten(values.items()), **kwargs)


def mistakes(loader, values: dict, **kwargs) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        load(loader, values, **kwargs)
    return config.flat_errors(caught.value.messages)


def test_the_shipped_model_goes_through_its_forms_unchanged():
    model = Model()
    for rule in model.rules:
        assert load(config.load_rule, config.flatten(config.rule_form(rule))) == rule
    assert load(config.load_weights, config.flatten(config.weights_form(model))) == {
        "preset": model.preset,
        "weights": model.weights,
        "half_life_days": model.half_life_days,
    }
    assert load(config.load_mqa_rule, config.flatten(config.mqa_form(MqaRule()))) == MqaRule()
    assert load(config.load_tiers, config.flatten(config.tiers_form(model))) == {
        "tiers": model.tiers,
        "fit": model.fit,
        "signals": model.signals,
    }
    assert load(config.load_stages, config.flatten(config.stages_form(model))) == {
        "stages": model.stages,
        "stage_rules": model.stage_rules,
        "surge": model.surge,
    }


def test_a_rule_form_reads_empty_inputs_as_no_cap_and_a_filter_row_as_a_condition():
    rule = load(
        config.load_rule,
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
        config.load_rule,
        {"key": "follow", "kind": "x.y", "points": "nan", "where.1.property": "key"},
        taken_keys=["follow"],
    ) == {
        "key": ["Another rule has this key."],
        "kind": ["Not an interaction Harpoon records."],
        "points": ["Not a number."],
        "where.1.value": ["Required with a property."],
    }
    values = config.flatten(config.tiers_form(Model()))
    values.update({"tiers.1.tier": "3", "fit.industries": ",".join(["x"] * 60)})
    assert mistakes(config.load_tiers, values) == {
        "tiers.2.tier": ["This tier has a rule already."],
    }  # sixty times the same name is one name
    values["fit.industries"] = ",".join(f"行业{n}" for n in range(51))
    assert mistakes(config.load_tiers, values)["fit.industries"] == ["At most 50 names."]


def test_stage_rules_must_point_at_stages_that_remain():
    values = config.flatten(config.stages_form(Model()))
    values = {k: v for k, v in values.items() if not k.startswith("stages.")}
    values.update({"stages.0.key": "new", "stages.0.name": "New", "stages.1.key": "won"})
    assert mistakes(config.load_stages, values) == {
        "stages.1.name": ["Required."],
        "stage_rules.aware": ["Not one of the stages: pick another, or none."],
        "stage_rules.engaged": ["Not one of the stages: pick another, or none."],
        "stage_rules.mqa": ["Not one of the stages: pick another, or none."],
    }
    values.update({"stage_rules.aware": "", "stage_rules.engaged": "won", "stage_rules.mqa": ""})
    values["stages.1.name"] = "Won"
    loaded = load(config.load_stages, values)
    assert (loaded["stage_rules"].aware, loaded["stage_rules"].engaged) == (None, "won")


def test_form_names_nest_into_lists_and_a_far_row_is_ignored():
    assert config.unflatten(
        [("stages.1.key", "b"), ("stages.0.key", "a"), ("stages.900.key", "z"), ("tiers", ["1"])]
    ) == {"stages": [{"key": "a"}, {"key": "b"}], "tiers": ["1"]}
    assert config.flatten({"stages": [{"key": "a"}], "tiers": ["1"], "x": {"y": ""}}) == {
        "stages.0.key": "a",
        "tiers": ["1"],
        "x.y": "",
    }


def test_the_lead_half_life_is_at_least_a_week_so_ledger_weights_stay_finite():
    values = config.flatten(config.weights_form(Model()))
    values["half_life_days"] = "6.9"
    assert mistakes(config.load_weights, values) == {
        "half_life_days": ["At least 7 days; empty for no decay."]
    }
    values["half_life_days"] = "7"
    assert load(config.load_weights, values)["half_life_days"] == 7
