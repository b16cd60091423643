"""What predicts wins: Wilson and log-ratio intervals, a rule that truly predicts wins
against one that does not (on synthetic facts, then on a database), the fit's suggested
points, and fit -> preview -> adopt as a new model version."""

import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models import Account, Opportunity, ScoringModel
from scoring.engine import load_model, save_model
from scoring.model import Model, MqaRule, ScoreRule
from scoring.outcomes import outcome_facts
from scoring.preview import preview_impact
from scoring.wins import Facts, fit_weights, lift, report, wilson
from tests.factories import SCORING_NOW as NOW
from tests.factories import score_them as score
from tests.factories import scoring_account as account
from tests.factories import scoring_act as act
from tests.factories import scoring_contact as contact

RULES = (
    ScoreRule("demo_booked", "wechat.menu_click", 10, where={"key": "BOOK_DEMO"}),
    ScoreRule("article_read", "content.view", 3),
)
MODEL = Model(rules=RULES, mqa_rules=(MqaRule(name="委员会"),))


def test_wilson_and_the_log_ratio_interval():
    low, high = wilson(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(0, 20)[0] == 0.0 and wilson(20, 20)[1] == 1.0
    ratio = lift(20, 40, 5, 60)
    assert ratio.value == pytest.approx(6.0)
    assert ratio.low > 1 and ratio.significant  # 2.5 .. 14.6
    assert lift(3, 30, 0, 30).value > 1  # no conversions without: Haldane keeps it finite
    assert lift(0, 10, 0, 10) is None and lift(1, 0, 1, 10) is None


def synthetic(blocks=1, seed=7) -> Facts:
    """Blocks of 100 accounts: the 40 that booked a demo win half the time, the other 60
    one in twelve; reading articles (the even accounts) is spread evenly over winners and
    losers and predicts nothing."""
    rng = random.Random(seed)
    accounts, points, won, lost = set(), {}, set(), set()
    for block in range(blocks):
        base = 100 * block
        accounts |= {base + a for a in range(1, 101)}
        winners = {a for a in range(1, 41) if (a - 1) // 2 % 2 == 0} | {48, 61, 72, 85, 96}
        won |= {base + a for a in winners}
        lost |= {base + a for a in range(1, 41) if a not in winners}
        lost |= {base + a for a in range(41, 101) if a % 3 == 0 and a not in winners}
        for a in range(1, 101):
            by_rule = {}
            if a <= 40:
                by_rule["demo_booked"] = 10.0 * rng.randint(1, 2)
            if a % 2 == 0:
                by_rule["article_read"] = 3.0 * rng.randint(1, 4)
            points[base + a] = by_rule
    return Facts(accounts, points, {"委员会": set(range(1, 31))}, {}, won | lost, won, lost)


def test_a_rule_that_predicts_wins_has_a_lift_whose_interval_excludes_one():
    facts = synthetic()
    result = report(MODEL, facts)
    by_key = {(c.kind, c.key): c for c in result.comparisons}
    booked = by_key["rule", "demo_booked"].won
    assert (booked.with_hits, booked.with_total) == (20, 40)
    assert (booked.without_hits, booked.without_total) == (5, 60)
    assert booked.lift.value == pytest.approx(6.0) and booked.lift.low > 1
    reading = by_key["rule", "article_read"].won
    assert reading.with_total == 50 and reading.lift.low < 1 < reading.lift.high
    assert by_key["mqa", "委员会"].accounts == 30
    assert result.won == 25 and result.lost == len(facts.lost)


def test_the_fit_suggests_more_points_for_the_rule_that_predicts_wins():
    fit = fit_weights(MODEL, synthetic(blocks=4))
    assert fit.fitted and fit.outcomes >= 30 and not fit.too_few
    suggested = {s.key: s for s in fit.suggestions}
    assert suggested["demo_booked"].coefficient > 0
    assert suggested["demo_booked"].coefficient > suggested["article_read"].coefficient
    # A demo point now worth more than an article point, relative to today's points.
    booked, read = suggested["demo_booked"], suggested["article_read"]
    assert booked.suggested / booked.current > read.suggested / read.current
    assert fit.model(MODEL).rule("demo_booked").points == booked.suggested


def test_too_few_outcomes_is_a_message_not_an_error():
    empty = Facts(set(range(5)), {}, {}, {}, set(), set(), set())
    result = report(MODEL, empty)
    assert not result.fit.fitted and (result.fit.won, result.fit.lost) == (0, 0)
    assert all(c.won.lift is None for c in result.comparisons)
    few = Facts(
        {1, 2, 3, 4},
        {1: {"demo_booked": 10}, 3: {"demo_booked": 20}},
        {},
        {},
        {1, 2, 3, 4},
        {1, 3},
        {2, 4},
    )
    fit = fit_weights(MODEL, few)
    assert fit.fitted and fit.too_few


def opportunity(db, workspace_id, company, status, opened_days_ago):
    row = Opportunity(
        workspace_id=workspace_id,
        account_id=company.id,
        name="年度订阅",
        amount=100000,
        stage="qualify",
        probability=50,
        status=status,
        source="crm",
        opened_at=NOW - timedelta(days=opened_days_ago),
    )
    db.add(row)
    db.flush()


def test_the_report_reads_points_before_the_outcome_from_the_database(db, workspace_id):
    save_model(db, workspace_id, MODEL, "wins")
    companies = []
    for n in range(24):
        company = account(db, workspace_id, f"客户{n}", is_target=True)
        person = contact(db, workspace_id, company, "cio", "vp")
        touches = [act(db, person, "content.view", days_ago=20)] if n % 2 else []
        if n < 12:
            touches.append(act(db, person, "wechat.menu_click", days_ago=20, key="BOOK_DEMO"))
        if touches:
            score(db, workspace_id, touches, model=MODEL)
        if n < 12 or n % 3 == 0:
            won = n < 12 and n % 3 != 2
            opportunity(db, workspace_id, company, "won" if won else "lost", 10)
        companies.append(company)
    # Points after the opportunity opened do not count toward it.
    late = contact(db, workspace_id, companies[21], "cto", "vp")
    score(db, workspace_id, [act(db, late, "wechat.menu_click", days_ago=1, key="BOOK_DEMO")])
    db.commit()
    facts = outcome_facts(db, workspace_id, MODEL, NOW)
    assert companies[21].id in facts.opportunity
    assert "demo_booked" not in facts.points.get(companies[21].id, {})
    result = report(MODEL, facts)
    booked = next(c for c in result.comparisons if c.key == "demo_booked")
    assert (booked.won.with_hits, booked.won.with_total) == (8, 12)
    assert booked.won.without_hits == 0 and booked.won.lift.value > 1


def test_fit_preview_and_adopt_make_a_new_model_version(db, workspace_id):
    save_model(db, workspace_id, MODEL, "wins")
    for n in range(30):
        company = account(db, workspace_id, f"客户{n}", is_target=True)
        person = contact(db, workspace_id, company, "cio", "vp")
        touches = [act(db, person, "content.view", days_ago=30 + n % 5)]
        if n % 3:
            touches.append(act(db, person, "wechat.menu_click", days_ago=30, key="BOOK_DEMO"))
        score(db, workspace_id, touches, model=MODEL)
        opportunity(db, workspace_id, company, "won" if n % 3 and n % 4 else "lost", 10)
    db.commit()
    current = load_model(db, workspace_id)
    fit = report(current, outcome_facts(db, workspace_id, current, NOW)).fit
    assert fit.fitted and fit.too_few is False
    proposed = fit.model(current)
    assert proposed.rule("demo_booked").points != current.rule("demo_booked").points
    impact = preview_impact(db, workspace_id, current, proposed)
    assert impact.rescored and impact.accounts == 30
    versions = db.scalar(select(func.count()).select_from(ScoringModel))
    assert db.scalar(select(func.max(Account.score))) > 0  # the preview rolled back
    save_model(db, workspace_id, proposed, "Suggested weights: 30 outcomes")
    db.commit()
    assert db.scalar(select(func.count()).select_from(ScoringModel)) == versions + 1
    assert load_model(db, workspace_id) == proposed
