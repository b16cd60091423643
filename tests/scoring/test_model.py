"""The scoring arithmetic: rule filters, caps, decay, role-weighting presets, the MQA
example rule at its boundaries, and a default model that scores every recorded kind."""

from datetime import UTC, datetime, timedelta

import pytest

from crm.rule_config import INTERACTION_KINDS
from scoring.model import (
    DEFAULT_RULES,
    PRESETS,
    Engagement,
    Member,
    MqaRule,
    ScoreRule,
    Touch,
    account_score,
    decayed,
    lead_score,
    score_touches,
)

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def touch(n, kind, days_ago=0.0, minutes=0.0, **properties):
    return Touch(n, kind, properties, NOW - timedelta(days=days_ago), minutes)


def test_the_most_specific_rule_wins_and_filters_match_exactly_or_by_substring():
    rules = [
        ScoreRule("any_click", "wechat.menu_click", 2),
        ScoreRule("pricing", "wechat.menu_click", 8, where={"key": "PRICING"}),
        ScoreRule("whitepaper", "wechat.menu_view", 5, where={"url": "contains:whitepaper"}),
    ]
    hits = score_touches(
        rules,
        [
            touch(1, "wechat.menu_click", key="PRICING"),
            touch(2, "wechat.menu_click", key="CASES"),
            touch(3, "wechat.menu_view", url="https://x.example/whitepaper-ai"),
            touch(4, "wechat.menu_view", url="https://x.example/about"),
        ],
    )
    assert [(h.interaction_id, h.rule_key, h.points) for h in hits] == [
        (1, "pricing", 8),
        (2, "any_click", 2),
        (3, "whitepaper", 5),
    ]


def test_caps_per_day_and_per_contact_count_the_ledger_too():
    rules = [
        ScoreRule("open", "email.open", 1, per_day=1),
        ScoreRule("follow", "wechat.follow", 5, per_contact=1),
    ]
    touches = [touch(n, "email.open", days_ago=n // 2) for n in range(4)]  # 2 a day, 2 days
    touches += [touch(10, "wechat.follow", days_ago=3), touch(11, "wechat.follow")]
    hits = score_touches(rules, touches)
    # The first of each day scores (ids 2 and 3 yesterday, 0 and 1 today).
    assert sorted(h.interaction_id for h in hits if h.rule_key == "open") == [0, 2]
    assert [h.interaction_id for h in hits if h.rule_key == "follow"] == [10]
    # Replaying with what the ledger already holds scores nothing twice.
    day = NOW.date().isoformat()
    again = score_touches(rules, [touch(20, "email.open")], prior={("open", day): 1})
    assert again == []


def test_engagement_minutes_add_points():
    rule = ScoreRule("live", "live.watch", 5, per_minute=0.5)
    (hit,) = score_touches([rule], [touch(1, "live.watch", minutes=40)])
    assert hit.points == 25


@pytest.mark.parametrize(
    ("age_days", "half_life", "expected"),
    [(0, 30, 100), (30, 30, 50), (60, 30, 25), (15, 30, 70.71), (45, None, 100), (-1, 30, 100)],
)
def test_decay_halves_every_half_life(age_days, half_life, expected):
    assert decayed(100, age_days, half_life) == pytest.approx(expected, abs=0.01)


def test_lead_score_is_the_decayed_sum_and_never_negative():
    rules = [ScoreRule("form", "form.submit", 20), ScoreRule("unfollow", "wechat.unfollow", -10)]
    hits = score_touches(rules, [touch(1, "form.submit", days_ago=30)])
    assert lead_score(hits, NOW, 30) == pytest.approx(10)
    gone = score_touches(rules, [touch(2, "wechat.unfollow")])
    assert lead_score(gone, NOW, 30) == 0


def committee(now=NOW):
    return [
        Member(1, "cio", "c_level", 50, now - timedelta(days=1)),
        Member(2, "engineer", "staff", 50, now - timedelta(days=2)),
        Member(3, "procurement", "manager", 0, now - timedelta(days=1)),  # not engaged
    ]


def test_presets_weigh_decision_makers_or_engineers_and_are_not_a_plain_sum():
    top = account_score(committee(), PRESETS["top_down"], NOW)
    bottom = account_score(committee(), PRESETS["bottom_up"], NOW)
    assert top.contributions[1] > top.contributions[2]
    assert bottom.contributions[2] > bottom.contributions[1]
    assert set(top.contributions) == {1, 2}  # the unengaged member contributes nothing
    assert top.engaged_roles == {"cio", "engineer"}
    assert top.score != 100  # weighted, plus breadth, times recency
    assert top.score == pytest.approx((50 * 4 + 50 * 0.8 + 20) * top.recency, abs=0.01)


def test_an_account_nobody_touched_lately_cools_down():
    fresh = account_score(committee(), PRESETS["top_down"], NOW)
    stale = account_score(committee(NOW - timedelta(days=60)), PRESETS["top_down"], NOW)
    assert stale.score == pytest.approx(fresh.score / 4, rel=0.02)


def engaged(*people):
    return [Engagement(role, seniority, minutes) for role, seniority, minutes in people]


@pytest.mark.parametrize(
    ("people", "met"),
    [
        ((("cio", "vp", 60), ("engineer", "staff", 0), ("procurement", "manager", 5)), True),
        ((("cio", "vp", 59.9), ("engineer", "staff", 0), ("procurement", "manager", 5)), False),
        ((("cio", "director", 90), ("engineer", "staff", 0), ("cfo", "manager", 5)), False),
        ((("cio", "c_level", 60), ("engineer", "staff", 0)), False),  # two roles only
        ((("cio", "c_level", 60), ("cio", "vp", 5), ("engineer", "staff", 0)), False),
        ((("ceo", "c_level", 120), ("cfo", "vp", 0), ("other", "staff", 0)), False),
        ((("ceo", "c_level", 120), ("cfo", "vp", 0), ("it_manager", "staff", 0)), True),
    ],
)
def test_the_mqa_example_rule_at_its_boundaries(people, met):
    assert MqaRule().met(engaged(*people)) is met


def test_an_mqa_rule_may_also_ask_for_an_account_score():
    rule = MqaRule(min_account_score=100)
    people = engaged(("cio", "vp", 60), ("engineer", "staff", 0), ("cfo", "manager", 0))
    assert rule.met(people, account_score=100) and not rule.met(people, account_score=99)


def test_the_shipped_model_scores_every_kind_harpoon_records():
    recorded = set(INTERACTION_KINDS) | {
        "wechat.unfollow",
        "wecom.contact_edited",
        "wecom.contact_removed",
        "wecom.transfer_failed",
    }
    covered = {rule.kind for rule in DEFAULT_RULES}
    assert recorded <= covered
    assert len({rule.key for rule in DEFAULT_RULES}) == len(DEFAULT_RULES)
