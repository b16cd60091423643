"""Scoring over the database: the ledger's idempotence and caps, decay without rewriting,
role-weighted accounts, the MQA example rule at its boundaries, tiers, surges, stages
(forward by rules, anywhere by people) and a rescore of history."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from models import (
    Account,
    AccountSnapshot,
    Contact,
    Interaction,
    ScoreEntry,
    StageChange,
)
from scoring.engine import Scorer, lead_score_at, load_model, save_model
from scoring.model import PRESETS, Member, Model, MqaRule, ScoreRule, TierRule, account_score
from scoring.stages import set_stage

NOW = datetime(2026, 11, 22, 4, tzinfo=UTC)  # 12:00 in Shanghai


def account(db, workspace_id, name=None, **fields) -> Account:
    name = name or f"公司{db.scalar(select(func.count()).select_from(Account)) + 1}"
    row = Account(workspace_id=workspace_id, name=name, normalized_name=name, **fields)
    db.add(row)
    db.flush()
    return row


def contact(db, workspace_id, account=None, role=None, seniority=None) -> Contact:
    row = Contact(
        workspace_id=workspace_id,
        account_id=account.id if account else None,
        role=role,
        seniority=seniority,
    )
    db.add(row)
    db.flush()
    return row


def act(db, person, kind, *, days_ago=0.0, minutes=0.0, **properties) -> Interaction:
    row = Interaction(
        workspace_id=person.workspace_id,
        contact_id=person.id,
        account_id=person.account_id,
        kind=kind,
        properties=properties,
        engagement_minutes=minutes,
        occurred_at=NOW - timedelta(days=days_ago),
    )
    db.add(row)
    db.flush()
    return row


def score(db, workspace_id, interactions, now=NOW, model=None):
    scorer = Scorer.load(db, workspace_id, now)
    if model is not None:
        scorer.model = model
    result = scorer.score_interaction_ids([i.id for i in interactions])
    db.expire_all()
    return result


def ledger(db, person):
    return db.execute(
        select(ScoreEntry.rule_key, ScoreEntry.points)
        .where(ScoreEntry.contact_id == person.id)
        .order_by(ScoreEntry.id)
    ).all()


def test_replaying_interactions_never_counts_twice(db, workspace_id):
    person = contact(db, workspace_id)
    touches = [act(db, person, "wechat.follow"), act(db, person, "wechat.message")]
    first = score(db, workspace_id, touches)
    lead = db.get(Contact, person.id).lead_score
    again = score(db, workspace_id, touches)
    assert first.entries == 2
    assert ledger(db, person) == [("follow", 5), ("message", 4)]
    assert again.entries == 0
    assert db.get(Contact, person.id).lead_score == pytest.approx(lead)


def test_caps_count_what_earlier_batches_put_in_the_ledger(db, workspace_id):
    person = contact(db, workspace_id)
    model = Model(
        rules=(
            ScoreRule("open", "email.open", 1, per_day=1),
            ScoreRule("follow", "wechat.follow", 5, per_contact=1),
            ScoreRule("read", "content.view", 0, per_minute=10, max_points=25),
        )
    )
    score(db, workspace_id, [act(db, person, "email.open")], model=model)
    score(db, workspace_id, [act(db, person, "email.open")], model=model)  # same day: capped
    score(db, workspace_id, [act(db, person, "email.open", days_ago=1)], model=model)
    score(db, workspace_id, [act(db, person, "wechat.follow", days_ago=2)], model=model)
    score(db, workspace_id, [act(db, person, "wechat.follow")], model=model)  # once ever
    score(db, workspace_id, [act(db, person, "content.view", minutes=2)], model=model)
    score(db, workspace_id, [act(db, person, "content.view", minutes=2)], model=model)
    score(db, workspace_id, [act(db, person, "content.view", minutes=2)], model=model)
    assert ledger(db, person) == [
        ("open", 1),
        ("open", 1),
        ("follow", 5),
        ("read", 20),
        ("read", 5),  # the lifetime cap of 25 points leaves 5
    ]


def test_negative_rules_lower_the_score_but_never_below_zero(db, workspace_id):
    person = contact(db, workspace_id)
    score(db, workspace_id, [act(db, person, "wechat.follow", days_ago=1)])
    assert db.get(Contact, person.id).lead_score > 0
    score(db, workspace_id, [act(db, person, "wecom.contact_removed")])
    assert db.get(Contact, person.id).score_mass < 0
    assert db.get(Contact, person.id).lead_score == 0


def test_decay_halves_a_score_each_half_life_without_rewriting_anything(db, workspace_id):
    company = account(db, workspace_id)
    person = contact(db, workspace_id, company, "engineer", "staff")
    score(db, workspace_id, [act(db, person, "form.submit")])
    assert db.get(Contact, person.id).lead_score == pytest.approx(20)
    mass = db.get(Contact, person.id).score_mass
    weights = db.scalars(select(ScoreEntry.weight)).all()
    for days, lead in ((30, 10), (60, 5)):
        later = NOW + timedelta(days=days)
        assert lead_score_at(mass, later, 30) == pytest.approx(lead)
        Scorer.load(db, workspace_id, later).refresh_workspace()
        db.expire_all()
        # The account sees the decayed lead score (x 0.8 for an engineer, + 10 breadth),
        # its recency decaying on its own half-life of 30 days.
        recency = 0.5 ** (days / 30)
        assert db.get(Account, company.id).score == pytest.approx((lead * 0.8 + 10) * recency)
    assert db.scalars(select(ScoreEntry.weight)).all() == weights
    assert db.get(Contact, person.id).score_mass == mass


def test_recompute_repairs_lead_scores_from_the_ledger(db, workspace_id):
    person = contact(db, workspace_id)
    idle = contact(db, workspace_id)
    score(db, workspace_id, [act(db, person, "form.submit")])
    right = db.get(Contact, person.id).score_mass
    db.get(Contact, person.id).score_mass = 999.0
    db.get(Contact, idle.id).score_mass = 5.0
    db.commit()
    Scorer.load(db, workspace_id, NOW).recompute()
    db.expire_all()
    assert db.get(Contact, person.id).score_mass == pytest.approx(right)
    assert db.get(Contact, idle.id).score_mass == 0


def test_presets_weigh_decision_makers_or_engineers_and_add_breadth(db, workspace_id):
    top = account(db, workspace_id, "甲公司")
    bottom = account(db, workspace_id, "乙公司")
    cio = contact(db, workspace_id, top, "cio", "c_level")
    engineers = [contact(db, workspace_id, bottom, "engineer", "staff") for _ in range(2)]
    touches = [act(db, cio, "form.submit")]
    touches += [act(db, e, "form.submit") for e in engineers]
    score(db, workspace_id, touches)
    # top-down: the CIO's 20 points x 2.0 x 2.0 + 10 breadth; two engineers: 2 x 20 x 0.8 + 10.
    assert db.get(Account, top.id).score == pytest.approx(90)
    assert db.get(Account, bottom.id).score == pytest.approx(42)
    bottom_up = Model(preset="bottom_up", weights=PRESETS["bottom_up"])
    save_model(db, workspace_id, bottom_up, "Weights: bottom-up")
    Scorer.load(db, workspace_id, NOW).refresh_workspace()
    db.expire_all()
    assert db.get(Account, top.id).score == pytest.approx(20 * 1.2 * 1.0 + 10)
    assert db.get(Account, bottom.id).score == pytest.approx(2 * 20 * 2.0 * 1.3 + 10)


def committee(db, workspace_id, vp_minutes, *, roles=("cio", "engineer", "procurement")):
    company = account(db, workspace_id, owner_id=None)
    people = [contact(db, workspace_id, company, roles[0], "vp")]
    people += [contact(db, workspace_id, company, role, "staff") for role in roles[1:]]
    touches = [act(db, people[0], "live.watch", days_ago=89, minutes=vp_minutes)]
    touches += [act(db, p, "wechat.message", days_ago=10) for p in people[1:]]
    return company, touches


@pytest.mark.parametrize(("minutes", "mqa"), [(60, True), (59, False)])
def test_the_mqa_example_rule_at_its_minutes_boundary(db, workspace_id, minutes, mqa):
    company, touches = committee(db, workspace_id, minutes)
    result = score(db, workspace_id, touches)
    assert db.get(Account, company.id).mqa is mqa
    assert db.get(Account, company.id).stage == ("mqa" if mqa else "aware")
    assert [a.kind for a in result.alerts] == (["account_mqa"] if mqa else [])


def test_the_mqa_rule_needs_three_roles_within_ninety_days(db, workspace_id):
    company, touches = committee(db, workspace_id, 90, roles=("cio", "engineer"))
    score(db, workspace_id, touches)
    assert db.get(Account, company.id).mqa is False
    company, touches = committee(db, workspace_id, 90)
    score(db, workspace_id, touches, now=NOW + timedelta(days=2))  # the VP's watch is 91 days old
    assert db.get(Account, company.id).mqa is False


def test_an_mqa_rule_can_also_ask_for_a_score_and_a_tier(db, workspace_id):
    model = Model(mqa_rules=(MqaRule(min_account_score=10_000),))
    company, touches = committee(db, workspace_id, 90)
    score(db, workspace_id, touches, model=model)
    assert db.get(Account, company.id).mqa is False
    model = Model(mqa_rules=(MqaRule(tiers=(1,)),))
    company, touches = committee(db, workspace_id, 90)
    score(db, workspace_id, touches, model=model)
    assert db.get(Account, company.id).mqa is False


def test_tiers_follow_fit_acv_intent_and_engagement(db, workspace_id):
    model = Model(
        tiers=(
            TierRule(1, min_fit=70, min_acv=500_000, intent=True, engagement=True),
            TierRule(2, min_fit=70, intent=True),
            TierRule(3, min_fit=70),
        )
    )
    save_model(db, workspace_id, model, "tiers")
    big = account(db, workspace_id, "大客户", is_target=True, acv=800_000)
    researching = account(db, workspace_id, "研究中", is_target=True, acv=100_000)
    quiet = account(db, workspace_id, "安静", is_target=True)
    stranger = account(db, workspace_id, "路人")
    touches = []
    for company in (big, researching, stranger):
        person = contact(db, workspace_id, company, "cio", "director")
        touches += [act(db, person, "content.view", topics=["pricing"])]  # intent
        if company is big:
            touches += [act(db, person, "form.submit")]  # engagement
    score(db, workspace_id, touches)
    Scorer.load(db, workspace_id, NOW).refresh_accounts([quiet.id])
    db.expire_all()
    assert [db.get(Account, a.id).tier for a in (big, researching, quiet, stranger)] == [
        1,
        2,
        3,
        None,
    ]
    assert db.get(Account, quiet.id).stage == "target"


def test_a_surge_is_this_week_against_the_four_weeks_before(db, workspace_id):
    company = account(db, workspace_id)
    person = contact(db, workspace_id, company, "engineer", "staff")
    baseline = [act(db, person, "form.submit", days_ago=8 + 7 * week) for week in range(4)]
    score(db, workspace_id, baseline)
    assert db.get(Account, company.id).surging is False
    result = score(db, workspace_id, [act(db, person, "form.submit") for _ in range(2)])
    # 40 points this week vs a weekly mean of 20 over the four before: factor 2.
    assert db.get(Account, company.id).surge_ratio == pytest.approx(2.0)
    assert db.get(Account, company.id).surging is True
    assert "account_surge" in [a.kind for a in result.alerts]
    quieter = Model(surge=replace(Model().surge, factor=2.5))
    score(db, workspace_id, [act(db, person, "wechat.location")], model=quieter)
    assert db.get(Account, company.id).surging is False


def test_stages_move_forward_by_rules_and_anywhere_by_people(db, workspace_id):
    company = account(db, workspace_id, is_target=True, stage="target")  # as imported
    person = contact(db, workspace_id, company, "cio", "c_level")
    score(db, workspace_id, [act(db, person, "wechat.follow")])
    assert (db.get(Contact, person.id).stage, db.get(Account, company.id).stage) == (
        "aware",
        "aware",
    )
    score(db, workspace_id, [act(db, person, "sales.meeting")])  # 35 points, account 150
    assert db.get(Contact, person.id).stage == "engaged"
    assert db.get(Account, company.id).stage == "engaged"
    held = db.get(Account, company.id)
    assert set_stage(db, held, "opportunity", "报价已发出", user_id=None)
    assert set_stage(db, held, "aware", "客户预算冻结，退回")  # backwards
    db.commit()
    score(db, workspace_id, [act(db, person, "wechat.message")])  # no crossing: it sticks
    assert db.get(Account, company.id).stage == "aware"
    history = db.execute(
        select(StageChange.from_stage, StageChange.to_stage, StageChange.reason)
        .where(StageChange.subject == "account", StageChange.subject_id == company.id)
        .order_by(StageChange.id)
    ).all()
    assert history == [
        ("target", "aware", "first interaction"),
        ("aware", "engaged", "account score 39/100 ≥ 30"),  # 150 raw points
        ("engaged", "opportunity", "报价已发出"),
        ("opportunity", "aware", "客户预算冻结，退回"),
    ]
    assert db.scalar(select(func.count()).select_from(AccountSnapshot)) == 1


def test_a_rescore_rebuilds_the_ledger_under_the_new_rules(db, workspace_id):
    company = account(db, workspace_id)
    person = contact(db, workspace_id, company, "cio", "c_level")
    score(db, workspace_id, [act(db, person, "wechat.message", days_ago=d) for d in (1, 2)])
    assert db.get(Contact, person.id).score_mass > 0
    model = load_model(db, workspace_id)
    rules = tuple(
        replace(rule, points=50) if rule.key == "message" else rule for rule in model.rules
    )
    save_model(db, workspace_id, replace(model, rules=rules, half_life_days=None), "messages")
    Scorer.load(db, workspace_id, NOW).rescore_history()
    db.expire_all()
    assert ledger(db, person) == [("message", 50), ("message", 50)]
    assert db.get(Contact, person.id).lead_score == pytest.approx(100)
    recency = 0.5 ** (1 / 30)  # the latest message is a day old
    assert db.get(Account, company.id).score == pytest.approx((100 * 2 * 2 + 10) * recency, 0.01)


def test_the_sql_account_score_is_the_explained_one(db, workspace_id):
    """The per-batch SQL and scoring.model.account_score (the account page's explanation)
    agree, for every role and seniority, known or not."""
    company = account(db, workspace_id)
    people = [
        contact(db, workspace_id, company, role, seniority)
        for role, seniority in [
            ("cio", "c_level"),
            ("engineer", None),
            (None, "vp"),
            ("other", "manager"),
            ("marketing", "staff"),  # a role the weights do not name
            ("cfo", "intern"),  # nor this seniority
        ]
    ]
    touches = [act(db, p, "form.submit", days_ago=n) for n, p in enumerate(people)]
    touches.append(act(db, people[1], "wecom.contact_removed"))  # 20 - 15: still engaged
    score(db, workspace_id, touches)
    model = load_model(db, workspace_id)
    members = [
        Member(p.id, p.role, p.seniority, lead_score_at(c.score_mass, NOW, 30), c.last_engaged_at)
        for p in people
        if (c := db.get(Contact, p.id))
    ]
    explained = account_score(members, model.weights, NOW)
    assert db.get(Account, company.id).score == pytest.approx(explained.score, abs=0.01)
    assert len(explained.contributions) == 6
