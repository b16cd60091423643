"""Lifecycle KPIs on a small known history, every value computed by hand: the whole
workspace, one tier, one owner, and another workspace's rows that must never count."""

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from revenue.kpis import (
    LIFECYCLE,
    Scope,
    buckets,
    closed,
    dormant_recovery,
    kpis,
    lifecycle,
    mqa_conversion,
    nps,
    over_time,
    pipeline,
)
from scoring.model import DEFAULT_STAGES
from tests.factories import (
    make_account,
    make_contact,
    make_interaction,
    make_opportunity,
    make_stage_change,
    make_user,
    workspace_id,
)
from tests.helpers import session_of

TZ = "Asia/Shanghai"
LOCAL = ZoneInfo(TZ)
SEPTEMBER = (datetime(2026, 9, 1, tzinfo=LOCAL), datetime(2026, 10, 1, tzinfo=LOCAL))
STAGES = [stage.key for stage in DEFAULT_STAGES]


def at(month, day, hour=12):
    return datetime(2026, month, day, hour, tzinfo=ZoneInfo("UTC"))


@pytest.fixture
def history(app):
    """Six accounts of acme (owners A and B, tiers 1-3) with opportunities, MQA moves,
    activity and NPS answers, and one account of another workspace that has all of it."""
    owner_a = make_user(app, "sales", email="a@acme.example")
    owner_b = make_user(app, "sales", email="b@acme.example")
    a1 = make_account(app, "一号", tier=1, owner_id=owner_a, stage="aware")
    a2 = make_account(app, "二号", tier=2, owner_id=owner_b, stage="aware")
    a3 = make_account(app, "三号", tier=1, owner_id=owner_b, stage="engaged", mqa_since=at(9, 3))
    a4 = make_account(app, "四号", tier=3, stage="target")
    a5 = make_account(app, "五号", stage="target")
    a6 = make_account(app, "六号", tier=3, owner_id=owner_a, stage="expansion")
    theirs = make_account(app, "别家", workspace="other", tier=1, stage="aware")

    make_stage_change(app, a1, "aware", "mqa", at=at(9, 5))
    make_stage_change(app, a2, "aware", "mqa", at=at(9, 1))
    make_stage_change(app, a4, "target", "mqa", at=at(8, 20))  # before the period
    make_stage_change(app, theirs, "aware", "mqa", at=at(9, 1))

    def opportunity(account, amount, stage, opened, closed=None, workspace="acme", **values):
        dates = {"opened_at": opened} | ({"closed_at": closed} if closed else {})
        make_opportunity(
            app, account, workspace=workspace, amount=amount, stage=stage, **dates, **values
        )

    opportunity(a1, "100000", "won", at(8, 1), at(9, 10))  # 40 days
    opportunity(a2, "50000", "won", at(9, 2), at(9, 12), type="renewal")  # 10 days
    opportunity(a3, "30000", "won", at(9, 5), at(9, 25), type="expansion")  # 20 days
    opportunity(a1, "200000", "lost", at(9, 3), at(9, 20))
    opportunity(a2, "80000", "solution", at(9, 15))  # open, 30%
    opportunity(a3, "40000", "negotiation", at(7, 10))  # open, 60%
    opportunity(theirs, "999999", "won", at(9, 5), at(9, 10), workspace="other")
    opportunity(theirs, "500000", "solution", at(9, 6), workspace="other")

    people = {
        account: make_contact(app, f"P{account}", account_id=account)
        for account in (a1, a2, a3, a4, a5, a6)
    }
    stranger = make_contact(app, "别人", workspace="other", account_id=theirs)
    activity = [
        (a1, at(5, 1)),
        (a1, at(9, 15)),  # dormant since May, back in September
        (a2, at(5, 1)),
        (a2, at(7, 1)),  # active within 90 days of September: not dormant
        (a3, at(4, 1)),  # dormant; its NPS answer below brings it back
        (a4, at(9, 10)),  # new, never dormant
        (a6, at(3, 1)),  # dormant, stays so
    ]
    for account, when in activity:
        make_interaction(app, people[account], "content.view", at=when)
    make_interaction(app, stranger, "content.view", at=at(3, 1))
    make_interaction(app, stranger, "content.view", at=at(9, 9))

    answers = [
        (a1, at(9, 2), 3),
        (a1, at(9, 20), 10),  # a1's latest: promoter
        (a2, at(9, 10), 8),  # passive
        (a3, at(9, 11), 6),  # detractor
        (a4, at(8, 15), 9),  # before the period
        (a5, at(9, 12), 0),  # detractor
    ]
    for account, when, score in answers:
        make_interaction(app, people[account], "survey.nps", at=when, score=score)
    make_interaction(app, stranger, "survey.nps", at=at(9, 12), score=10)
    return {"ws": workspace_id(app), "a": owner_a, "b": owner_b}


def scope(history, **filters):
    return Scope(history["ws"], *SEPTEMBER, **filters)


def test_pipeline_created_and_weighted(app, history):
    with session_of(app) as session:
        everyone = pipeline(session, scope(history))
        tier_1 = pipeline(session, scope(history, tier=1))
        owner_b = pipeline(session, scope(history, owner_id=history["b"]))
    assert (everyone.created, everyone.created_amount) == (4, Decimal("360000.00"))
    # Open now: 80,000 x 30% + 40,000 x 60%.
    assert (everyone.open, everyone.open_amount) == (2, Decimal("120000.00"))
    assert everyone.weighted == Decimal("48000.00")
    assert (tier_1.created, tier_1.created_amount) == (2, Decimal("230000.00"))
    assert (tier_1.open, tier_1.weighted) == (1, Decimal("24000.00"))
    assert (owner_b.created, owner_b.created_amount) == (3, Decimal("160000.00"))


def test_win_rate_deal_size_cycle_and_renewal_expansion_revenue(app, history):
    with session_of(app) as session:
        everyone = closed(session, scope(history))
        tier_1 = closed(session, scope(history, tier=1))
        owner_b = closed(session, scope(history, owner_id=history["b"]))
    assert (everyone.won, everyone.lost) == (3, 1)
    assert everyone.won_amount == Decimal("180000.00")
    assert everyone.win_rate == 0.75
    assert everyone.win_rate_amount == pytest.approx(180000 / 380000)
    assert everyone.deal_size == Decimal("60000.00")
    assert everyone.renewal_amount == Decimal("50000.00")
    assert everyone.expansion_amount == Decimal("30000.00")
    assert everyone.cycle_median == pytest.approx(20)
    assert everyone.cycle_mean == pytest.approx(70 / 3)
    assert (tier_1.won, tier_1.lost, tier_1.won_amount) == (2, 1, Decimal("130000.00"))
    assert tier_1.cycle_median == pytest.approx(30)  # the mean of 40 and 20
    assert (owner_b.win_rate, owner_b.cycle_median) == (1.0, pytest.approx(15))


def test_nothing_closed_is_no_rate_rather_than_zero(app, history):
    with session_of(app) as session:
        empty = closed(session, Scope(history["ws"], at(1, 1), at(2, 1)))
    assert (empty.won, empty.win_rate, empty.deal_size, empty.cycle_median) == (0, None, None, None)


def test_mqa_to_opportunity_conversion_and_time(app, history):
    with session_of(app) as session:
        everyone = mqa_conversion(session, scope(history))
        tier_1 = mqa_conversion(session, scope(history, tier=1))
    # a1 (no opportunity after MQA), a2 (1 day), a3 by mqa_since (2 days); a4 in August.
    assert (everyone.mqa, everyone.converted) == (3, 2)
    assert everyone.median_days == pytest.approx(1.5)
    assert (tier_1.mqa, tier_1.converted, tier_1.median_days) == (2, 1, pytest.approx(2))


def test_recovery_of_dormant_accounts(app, history):
    with session_of(app) as session:
        everyone = dormant_recovery(session, scope(history))
        owner_a = dormant_recovery(session, scope(history, owner_id=history["a"]))
        tier_1 = dormant_recovery(session, scope(history, tier=1))
    assert (everyone.dormant, everyone.recovered) == (3, 2)  # a1, a3, a6; a6 stays away
    assert (owner_a.dormant, owner_a.recovered, owner_a.rate) == (2, 1, 0.5)
    assert (tier_1.dormant, tier_1.recovered) == (2, 2)


def test_nps_of_each_contacts_latest_answer(app, history):
    with session_of(app) as session:
        everyone = nps(session, scope(history))
        tier_1 = nps(session, scope(history, tier=1))
    assert (everyone.answers, everyone.promoters, everyone.passives, everyone.detractors) == (
        4,
        1,
        1,
        2,
    )
    assert everyone.score == -25.0
    assert (tier_1.answers, tier_1.score) == (2, 0.0)


def test_lifecycle_counts_and_conversion_between_stages(app, history):
    with session_of(app) as session:
        rows = lifecycle(session, scope(history), STAGES)
        tier_1 = lifecycle(session, scope(history, tier=1), STAGES)
    assert [row.stage.key for row in rows] == [stage.key for stage in LIFECYCLE]
    # Customers a1, a2; a3's won expansion made it an expansion account, as a6 is.
    assert [row.accounts for row in rows] == [1, 0, 0, 1, 0, 2, 2]
    assert [row.reached for row in rows] == [6, 5, 5, 5, 4, 4, 2]
    assert [row.next_rate for row in rows] == [5 / 6, 1.0, 1.0, 0.8, 1.0, 0.5, None]
    assert [row.accounts for row in tier_1] == [0, 0, 0, 0, 0, 1, 1]
    assert [row.next_rate for row in tier_1][-2:] == [0.5, None]


def test_a_workspace_without_some_stages_skips_them(app, history):
    with session_of(app) as session:
        rows = lifecycle(session, scope(history), ["target", "mqa", "customer"])
    assert [row.stage.key for row in rows] == ["target", "mqa", "customer"]
    # a3 and a6 never held one of these stages: they are not counted at all.
    assert [row.reached for row in rows] == [4, 3, 2]


def test_over_time_by_month_and_by_week(app, history):
    august_on = Scope(history["ws"], datetime(2026, 8, 1, tzinfo=LOCAL), SEPTEMBER[1])
    with session_of(app) as session:
        months = over_time(session, august_on, TZ, "month")
        weeks = over_time(session, scope(history), TZ, "week")
    assert [m.name for m in months] == ["2026-08", "2026-09"]
    assert [(m.created, m.created_amount) for m in months] == [
        (1, Decimal("100000.00")),
        (4, Decimal("360000.00")),
    ]
    september = months[1]
    assert september.won_by_type == {
        "new": Decimal("100000.00"),
        "renewal": Decimal("50000.00"),
        "expansion": Decimal("30000.00"),
    }
    assert (september.win_rate, september.cycle_median) == (0.75, pytest.approx(20))
    assert (months[0].won, months[0].win_rate, months[0].cycle_median) == (0, None, None)
    assert [w.name for w in weeks] == [
        "2026-08-31",
        "2026-09-07",
        "2026-09-14",
        "2026-09-21",
        "2026-09-28",
    ]
    assert [w.created for w in weeks] == [3, 0, 1, 0, 0]
    assert [w.won for w in weeks] == [0, 2, 0, 1, 0]


def test_buckets_follow_the_local_calendar():
    start = datetime(2026, 1, 31, 16, tzinfo=ZoneInfo("UTC"))  # Feb 1, 00:00 in Shanghai
    end = datetime(2026, 3, 31, 16, tzinfo=ZoneInfo("UTC"))
    assert buckets(start, end, TZ, "month") == ["2026-02", "2026-03"]
    assert buckets(start, end, "UTC", "month") == ["2026-01", "2026-02", "2026-03"]


def test_another_workspace_sees_only_its_own(app, history):
    with session_of(app) as session:
        theirs = kpis(session, Scope(workspace_id(app, "other"), *SEPTEMBER))
    assert (theirs.pipeline.created, theirs.pipeline.created_amount) == (2, Decimal("1499999.00"))
    assert (theirs.closed.won, theirs.closed.won_amount) == (1, Decimal("999999.00"))
    assert (theirs.mqa.mqa, theirs.mqa.converted) == (1, 1)
    assert (theirs.recovery.dormant, theirs.recovery.recovered) == (1, 1)
    assert (theirs.nps.answers, theirs.nps.score) == (1, 100.0)


def test_the_previous_period_is_as_long_and_just_before(history):
    previous = scope(history).previous()
    assert previous.end == SEPTEMBER[0]
    assert previous.end - previous.start == SEPTEMBER[1] - SEPTEMBER[0]
