"""The account score's 0-100 scale (bounded, monotone, stable), surges against an empty
baseline, MQA hysteresis (enter at 3 roles, stay at 2, exit at 1) and the invariant that
an account at the MQA stage is an MQA."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from models import Account, AccountSnapshot, StageChange
from scoring.engine import Scorer
from scoring.model import Model, MqaRule, Scale, StageRules, Surge, mqa_status
from scoring.stages import set_stage
from tests.factories import SCORING_NOW as NOW
from tests.factories import score_them as score
from tests.factories import scoring_account as account
from tests.factories import scoring_act as act
from tests.factories import scoring_contact as contact

# ---- the scale ----------------------------------------------------------------------------


def test_the_scale_is_bounded_and_monotone():
    scale = Scale(points=300)
    readings = [scale.of(raw) for raw in range(0, 20_000, 7)]
    assert readings[0] == 0.0
    assert all(0.0 <= r <= 100.0 for r in readings)
    assert readings == sorted(readings)
    assert scale.of(300) == pytest.approx(63.2)
    assert scale.of(1200) == pytest.approx(98.2)
    assert scale.of(1_000_000) == 100.0  # never more
    assert scale.of(-50) == 0.0 and scale.of(None) == 0.0
    assert scale.of(scale.raw_for(80)) == pytest.approx(80.0)


def test_a_pre_scale_model_document_carries_its_thresholds_onto_the_scale():
    old = {
        "stage_rules": {"engaged_account_score": 100.0},
        "mqa_rules": [{"name": "委员会", "min_account_score": 80}, {"name": "任意"}],
    }
    model = Model.from_document(old)
    assert model.scale == Scale()
    assert model.stage_rules.engaged_account_score == Scale().of(100.0) == 28.3
    assert [r.min_account_score for r in model.mqa_rules] == [Scale().of(80), None]
    # A document saved with a scale is read as it is.
    assert Model.from_document(model.to_document()) == model


def test_the_scaled_score_is_stored_and_stable_when_other_accounts_change(db, workspace_id):
    mine = account(db, workspace_id)
    person = contact(db, workspace_id, mine, "cio", "vp")
    score(db, workspace_id, [act(db, person, "form.submit"), act(db, person, "sales.meeting")])
    row = db.get(Account, mine.id)
    assert 0 < row.scaled_score < 100
    assert row.scaled_score == Model().scale.of(row.score)
    snapshot = db.scalar(select(AccountSnapshot).where(AccountSnapshot.account_id == mine.id))
    assert snapshot.scaled_score == row.scaled_score
    before = row.scaled_score
    other = account(db, workspace_id)
    boss = contact(db, workspace_id, other, "ceo", "c_level")
    score(db, workspace_id, [act(db, boss, "event.checkin") for _ in range(5)])
    Scorer.load(db, workspace_id, NOW).refresh_accounts(None)
    db.expire_all()
    assert db.get(Account, other.id).scaled_score > before
    assert db.get(Account, mine.id).scaled_score == before


def test_thresholds_compare_with_the_scaled_score(db, workspace_id):
    company = account(db, workspace_id)
    person = contact(db, workspace_id, company, "cio", "vp")
    # 15 points x 2.0 x 1.7 + 10 breadth = 61 raw points: 18.4 on the default scale.
    low = Model(stage_rules=StageRules(engaged_account_score=20))
    score(db, workspace_id, [act(db, person, "wecom.contact_added")], model=low)
    assert db.get(Account, company.id).score == pytest.approx(61.0)
    assert db.get(Account, company.id).stage == "aware"
    score(db, workspace_id, [act(db, person, "form.submit")], model=low)
    assert db.get(Account, company.id).stage == "engaged"


# ---- surges -------------------------------------------------------------------------------


def test_a_surge_without_a_baseline_has_no_ratio():
    surge = Surge(factor=2, min_points=20, min_baseline=20)
    assert surge.check(1701, 0) == (True, None)  # new activity, not "↑1701×"
    assert surge.check(10, 0) == (False, None)  # too quiet to be anything
    assert surge.check(60, 8) == (True, None)  # a tiny baseline is no baseline
    assert surge.check(60, 80) == (True, 3.0)  # 60 against a weekly mean of 20
    assert Surge(factor=4).check(60, 80) == (False, 3.0)


def test_a_busy_account_with_no_history_is_new_activity(db, workspace_id):
    company = account(db, workspace_id, "新公司", is_target=True)
    person = contact(db, workspace_id, company, "engineer", "staff")
    result = score(db, workspace_id, [act(db, person, "form.submit") for _ in range(3)])
    row = db.get(Account, company.id)
    assert row.surging is True and row.surge_ratio is None
    [alert] = [a for a in result.alerts if a.kind == "account_surge"]
    assert "新活跃" in alert.text and "倍" not in alert.text


# ---- MQA hysteresis and the stage ---------------------------------------------------------

RULE = MqaRule(name="三方参与", window_days=30, min_roles=3, senior_count=0)
MODEL = Model(mqa_rules=(RULE,))


def test_mqa_enters_at_three_roles_stays_at_two_and_exits_at_one():
    def run(counts):
        mqa, states = False, []
        for roles in counts:
            mqa, _ = mqa_status((RULE,), [(roles, 0)], 0.0, None, mqa)
            states.append(mqa)
        return states

    assert run([2, 3, 2, 3, 2, 2, 1, 2, 2, 3]) == [
        False,  # 2 roles: not yet
        True,  # 3: enters
        True,  # 2: stays (no flapping on the edge)
        True,
        True,
        True,
        False,  # 1: exits
        False,  # 2 again: not enough to come back
        False,
        True,  # 3: enters again
    ]
    assert RULE.roles_to_stay == 2
    assert MqaRule(min_account_score=50).score_to_stay == 40
    assert MqaRule(min_account_score=50, exit_account_score=45).score_to_stay == 45
    # An exit bar above the entry bar would flap: it is held at the entry bar.
    assert MqaRule(min_roles=3, exit_roles=5).roles_to_stay == 3


def test_mqa_hysteresis_on_the_account_and_its_stage(db, workspace_id):
    company = account(db, workspace_id, "滞回", is_target=True)
    # Three roles, their last activity 5, 15 and 25 days ago: they leave the 30-day
    # window one by one as the days pass.
    for role, days in (("cio", 5), ("cto", 15), ("engineer", 25)):
        person = contact(db, workspace_id, company, role, "staff")
        score(db, workspace_id, [act(db, person, "form.submit", days_ago=days)], model=MODEL)

    def judged(days_later):
        scorer = Scorer.load(db, workspace_id, NOW + timedelta(days=days_later))
        scorer.model = MODEL
        result = scorer.refresh_accounts([company.id])
        db.expire_all()
        row = db.get(Account, company.id)
        return row.mqa, row.stage, result

    mqa, stage, _ = judged(0)
    assert (mqa, stage) == (True, "mqa")
    mqa, stage, _ = judged(6)  # the engineer left the window: 2 roles, still an MQA
    assert (mqa, stage) == (True, "mqa")
    since = db.get(Account, company.id).mqa_since
    assert since is not None
    mqa, stage, _ = judged(16)  # the CTO too: 1 role, the MQA ends and the stage follows
    assert (mqa, stage) == (False, "engaged")
    assert db.get(Account, company.id).mqa_since is None
    last = db.execute(
        select(StageChange.from_stage, StageChange.to_stage, StageChange.reason)
        .where(StageChange.subject == "account", StageChange.subject_id == company.id)
        .order_by(StageChange.id.desc())
    ).first()
    assert last[:2] == ("mqa", "engaged") and last.reason.startswith("MQA 退出")
    mqa, stage, _ = judged(17)  # judged again: nothing moves (no flapping)
    assert (mqa, stage) == (False, "engaged")


def test_stages_past_mqa_are_not_touched_by_an_mqa_exit(db, workspace_id):
    company = account(db, workspace_id, "已约见", is_target=True)
    person = contact(db, workspace_id, company, "cio", "staff")
    others = [contact(db, workspace_id, company, r, "staff") for r in ("cto", "engineer")]
    touches = [act(db, p, "form.submit", days_ago=20) for p in [person, *others]]
    score(db, workspace_id, touches, model=MODEL)
    assert db.get(Account, company.id).stage == "mqa"
    set_stage(db, db.get(Account, company.id), "meeting", "约了演示")
    db.commit()
    scorer = Scorer.load(db, workspace_id, NOW + timedelta(days=15))
    scorer.model = MODEL
    scorer.refresh_accounts([company.id])
    db.expire_all()
    row = db.get(Account, company.id)
    assert (row.mqa, row.stage) == (False, "meeting")


def test_an_account_at_the_mqa_stage_without_the_flag_goes_back_to_engaged(db, workspace_id):
    """What the demo showed: stage MQA next to "MQA not yet". The engine never leaves it so."""
    company = account(db, workspace_id, "不一致", is_target=True, stage="mqa", mqa=False)
    person = contact(db, workspace_id, company, "cio", "staff")
    score(db, workspace_id, [act(db, person, "wechat.message")], model=MODEL)
    row = db.get(Account, company.id)
    assert (row.mqa, row.stage) == (False, "engaged")
    rows = db.execute(select(Account.stage, Account.mqa)).all()
    assert all(mqa for stage, mqa in rows if stage == "mqa")
