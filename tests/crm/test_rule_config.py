"""Rule settings: each kind's config shape, the tag and reply it may have, clear field messages."""

import re

import pytest
from marshmallow import ValidationError

from crm.rule_config import (
    DEFAULT_PROFILE_PATTERN,
    INTERACTION_KINDS,
    RULE_SCHEMAS,
    validate_rule,
)
from crm.touchpoints import KINDS as TOUCHPOINT_KINDS
from models import RuleKind


def errors_of(kind, config, *, has_tag=True, reply=None) -> dict:
    with pytest.raises(ValidationError) as caught:
        validate_rule(kind, config, has_tag=has_tag, reply=reply)
    return caught.value.messages


def test_every_rule_kind_has_a_schema():
    assert set(RULE_SCHEMAS) == set(RuleKind)


@pytest.mark.parametrize("match", ["contains", "exact", "regex"])
def test_keyword_rules_match_three_ways_and_may_reply(match):
    config = {"match": match, "pattern": "报价|price"}
    assert validate_rule("keyword", config, has_tag=True, reply="稍后发给您") == config


def test_a_keyword_regex_must_compile():
    errors = errors_of("keyword", {"match": "regex", "pattern": "报价("})
    [message] = errors["pattern"]
    assert message.startswith("not a valid regular expression: ")
    # The same text is fine as a plain keyword.
    validate_rule("keyword", {"match": "contains", "pattern": "报价("}, has_tag=True, reply=None)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"match": "fuzzy", "pattern": "x"}, "match"),
        ({"match": "exact", "pattern": ""}, "pattern"),
        ({"match": "exact", "pattern": "   "}, "pattern"),
        ({"match": "exact", "pattern": "x" * 201}, "pattern"),
        ({"match": "exact"}, "pattern"),
        ({"match": "exact", "pattern": "x", "extra": 1}, "extra"),
    ],
)
def test_bad_keyword_settings_name_their_field(config, field):
    assert field in errors_of("keyword", config)


def test_a_keyword_rule_needs_a_tag_and_a_short_reply():
    errors = errors_of(
        "keyword", {"match": "exact", "pattern": "hi"}, has_tag=False, reply="x" * 601
    )
    assert set(errors) == {"tag", "reply"}
    validate_rule("keyword", {"match": "exact", "pattern": "hi"}, has_tag=True, reply="x" * 600)


def test_a_menu_key_is_counted_in_utf8_bytes():
    assert validate_rule("menu", {"key": "中" * 42}, has_tag=True, reply=None) == {"key": "中" * 42}
    assert "128 bytes" in errors_of("menu", {"key": "中" * 43})["key"][0]
    assert "key" in errors_of("menu", {"key": ""})
    assert "tag" in errors_of("menu", {"key": "ROLE_CIO"}, has_tag=False)


def test_the_shipped_profile_pattern_is_valid_and_reads_title_and_company():
    config = {"pattern": DEFAULT_PROFILE_PATTERN}
    assert validate_rule("profile", config, has_tag=False, reply="谢谢") == config
    match = re.search(DEFAULT_PROFILE_PATTERN, "你好，我是信息中心主任，来自华信科技。")
    assert match.group("title", "company") == ("信息中心主任", "华信科技")
    assert re.search(DEFAULT_PROFILE_PATTERN, "我是采购经理").group("title") == "采购经理"


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("我是(.+)", "Must capture (?P<title>...) or (?P<company>...)"),
        ("我是(?P<title>.+", "not a valid regular expression: "),
        ("", "1 to 500 characters."),
    ],
)
def test_a_profile_pattern_must_compile_and_capture_a_title_or_company(pattern, message):
    assert errors_of("profile", {"pattern": pattern}, has_tag=False)["pattern"][0].startswith(
        message
    )


def test_a_profile_rule_applies_no_tag():
    errors = errors_of("profile", {"pattern": DEFAULT_PROFILE_PATTERN}, has_tag=True)
    assert list(errors) == ["tag"]


@pytest.mark.parametrize("match", ["exact", "prefix"])
def test_source_rules(match):
    config = {"match": match, "value": "expo2024"}
    assert validate_rule("source", config, has_tag=True, reply=None) == config


def test_bad_source_rules():
    errors = errors_of("source", {"match": "suffix", "value": "x" * 65}, reply="hello")
    assert set(errors) == {"match", "value", "reply"}
    assert "tag" in errors_of("source", {"match": "exact", "value": "a"}, has_tag=False)


def test_a_behavior_rule_counts_interactions_in_a_window():
    config = {"kinds": ["content.view", "content.like"], "min_count": "3", "days": "30"}
    assert validate_rule("behavior", config, has_tag=True, reply=None) == {
        "kinds": ["content.view", "content.like"],
        "match": "equals",
        "min_count": 3,
        "days": 30,
    }
    filtered = {**config, "property": "url", "value": "/pricing", "match": "contains"}
    assert validate_rule("behavior", filtered, has_tag=True, reply=None)["value"] == "/pricing"


def test_the_interaction_kinds_a_behavior_rule_may_count():
    assert "content.view" in INTERACTION_KINDS and "wechat.unfollow" not in INTERACTION_KINDS
    assert set(TOUCHPOINT_KINDS) <= set(INTERACTION_KINDS)  # the API's and the pages' kinds
    assert len(set(INTERACTION_KINDS)) == len(INTERACTION_KINDS) == 10 + len(TOUCHPOINT_KINDS)


@pytest.mark.parametrize(
    ("config", "fields"),
    [
        ({"kinds": [], "min_count": 1, "days": 1}, {"kinds"}),
        ({"kinds": ["wechat.unfollow"], "min_count": 1, "days": 1}, {"kinds"}),
        ({"kinds": ["content.view", "content.view"], "min_count": 1, "days": 1}, {"kinds"}),
        ({"kinds": "content.view", "min_count": 1, "days": 1}, {"kinds"}),
        ({"kinds": ["content.view"], "min_count": 0, "days": 366}, {"min_count", "days"}),
        ({"kinds": ["content.view"], "min_count": 1.5, "days": True}, {"min_count", "days"}),
        ({"kinds": ["content.view"], "min_count": "three", "days": 1}, {"min_count"}),
        ({"kinds": ["content.view"]}, {"min_count", "days"}),
        ({"kinds": ["content.view"], "min_count": 1, "days": 1, "property": "url"}, {"value"}),
        ({"kinds": ["content.view"], "min_count": 1, "days": 1, "value": "x"}, {"property"}),
        (
            {"kinds": ["content.view"], "min_count": 1, "days": 1, "property": "a b", "value": "x"},
            {"property"},
        ),
        (
            {
                "kinds": ["content.view"],
                "min_count": 1,
                "days": 1,
                "property": "url",
                "value": "x",
                "match": "regex",
            },
            {"match"},
        ),
    ],
)
def test_bad_behavior_rules_name_their_fields(config, fields):
    assert set(errors_of("behavior", config)) == fields


@pytest.mark.parametrize("days", [1, 730, "90"])
def test_inactivity_rules(days):
    assert validate_rule("inactivity", {"days": days}, has_tag=True, reply=None) == {
        "days": int(days)
    }


@pytest.mark.parametrize("days", [0, 731, -1, "", None, "1e3"])
def test_bad_inactivity_days(days):
    assert "days" in errors_of("inactivity", {"days": days})


def test_an_unknown_kind_or_a_config_that_is_not_an_object():
    assert "kind" in errors_of("webhook", {})
    assert "_schema" in errors_of("keyword", ["contains", "x"])


def test_every_problem_is_reported_at_once():
    errors = errors_of("inactivity", {"days": 0}, has_tag=False, reply="bye")
    assert set(errors) == {"days", "tag", "reply"}
