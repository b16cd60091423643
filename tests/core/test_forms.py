"""The form toolkit's dotted input names: they nest into lists and dicts and back."""

from core.forms import flatten, unflatten


def test_form_names_nest_into_lists_and_a_far_row_is_ignored():
    assert unflatten(
        [("stages.1.key", "b"), ("stages.0.key", "a"), ("stages.900.key", "z"), ("tiers", ["1"])]
    ) == {"stages": [{"key": "a"}, {"key": "b"}], "tiers": ["1"]}
    assert flatten({"stages": [{"key": "a"}], "tiers": ["1"], "x": {"y": ""}}) == {
        "stages.0.key": "a",
        "tiers": ["1"],
        "x.y": "",
    }
