"""Attribution on a small known history: the touches of an account's people (merged ones
too) before an opportunity was created and before it was won, credited per dimension;
another workspace's touches never counted; changed opportunities credited again."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from core.jobs import Job
from models import AttributionTouch, Contact, Identity, Opportunity, utcnow
from revenue.attribution import attribute_opportunities, changed_opportunity_ids
from revenue.credit import MODELS
from revenue.influence import Totals, influence, influence_totals, value_chain
from tests.factories import (
    add_identity,
    make_account,
    make_contact,
    make_content,
    make_executed_program,
    make_interaction,
    make_journey,
    make_journey_step,
    make_oa,
    make_opportunity,
    make_push,
    make_push_sent,
    workspace_id,
)
from tests.helpers import harpoon_of, run_jobs, session_of

NOW = utcnow().replace(microsecond=0)


def ago(days: float):
    return NOW - timedelta(days=days)


@pytest.fixture
def history(app):
    """华东制造 (MQA 20 days ago): 李雷 and 韩梅 on it, 老李 merged into 李雷; an
    opportunity of ¥300,000 created 10 days ago and won yesterday."""
    ws = workspace_id(app)
    account = make_account(app, "华东制造", mqa=True, mqa_since=ago(20))
    other_account = make_account(app, "西部能源")
    lilei = make_contact(app, "李雷", account_id=account)
    hanmei = make_contact(app, "韩梅", account_id=account)
    old_li = make_contact(app, "老李")
    with session_of(app) as session:
        session.get(Contact, old_li).merged_into_id = lilei
        session.commit()
    outsider = make_contact(app, "路人", account_id=other_account)
    paper, guide, video = (make_content(app, title=t) for t in ("白皮书", "选型指南", "视频"))
    oa = make_oa(app)
    push = make_push(app, oa, status="sent")
    journey = make_journey(app)
    program, _order = make_executed_program(app, account, at=ago(5))

    make_interaction(app, lilei, "content.view", at=ago(50), content_id=paper)
    make_interaction(app, old_li, "content.view", at=ago(30), content_id=guide)  # merged: counts
    make_interaction(app, hanmei, "content.view", at=ago(15), content_id=paper)
    make_interaction(app, lilei, "wecom.contact_edited", at=ago(12))  # no touch
    make_interaction(app, lilei, "content.view", at=ago(200), content_id=video)  # before the window
    make_interaction(app, outsider, "content.view", at=ago(20), content_id=video)  # another account
    make_interaction(
        app, hanmei, "content.view", at=ago(3), content_id=guide
    )  # before the win only
    make_push_sent(app, push, hanmei, at=ago(12))
    make_push_sent(app, push, lilei, at=ago(12), status="failed")  # never reached him
    make_journey_step(app, journey, lilei, at=ago(11), detail={"openid": "o_lilei"})
    make_journey_step(app, journey, lilei, at=ago(11), detail={"tag_id": 3})  # not a touch
    # Another workspace: its interaction names our contact, its contact names our account.
    make_interaction(app, lilei, "content.view", at=ago(14), workspace="globex", content_id=video)
    stranger = make_contact(app, "他人", workspace="globex", account_id=account)
    make_interaction(app, stranger, "content.view", at=ago(14), content_id=video)

    opportunity = make_opportunity(
        app, account, amount="300000", opened_at=ago(10), stage="won", closed_at=ago(1)
    )
    return dict(
        ws=ws,
        oa=oa,
        account=account,
        opportunity=opportunity,
        paper=paper,
        guide=guide,
        video=video,
        push=push,
        journey=journey,
        program=program,
        lilei=lilei,
        hanmei=hanmei,
        old_li=old_li,
    )


def rows_of(app, opportunity):
    with session_of(app) as session:
        rows = session.scalars(
            select(AttributionTouch).where(AttributionTouch.opportunity_id == opportunity)
        ).all()
        session.expunge_all()
        return rows


def test_an_opportunity_is_credited_to_its_accounts_touches_in_each_window(app, history):
    with session_of(app) as session:
        result = attribute_opportunities(session, history["ws"])
    assert (result.opportunities, result.rows) == (
        1,
        12,
    )  # created: 3 reads, a push, a message; won: 4 reads, those, a program
    rows = rows_of(app, history["opportunity"])
    by = {(r.basis, r.dimension, r.ref, r.contact_id, r.occurred_at): r for r in rows}
    paper, guide = str(history["paper"]), str(history["guide"])
    lilei, hanmei, old_li = history["lilei"], history["hanmei"], history["old_li"]

    # Created 10 days ago: content read 50 (paper), 30 (guide, the merged contact) and 15
    # days before (paper): first, last, linear, U 40/20/40, W a third each (three touches).
    created = [
        by[("created", "content", paper, lilei, ago(50))],
        by[("created", "content", guide, old_li, ago(30))],
        by[("created", "content", paper, hanmei, ago(15))],
    ]
    assert [r.first_touch for r in created] == [1, 0, 0]
    assert [r.last_touch for r in created] == [0, 0, 1]
    assert [r.u_shaped for r in created] == pytest.approx([0.4, 0.2, 0.4])
    assert [r.w_shaped for r in created] == pytest.approx([1 / 3] * 3)
    # Ages 40, 20 and 5 days before the creation: weights 2^(-40/7), 2^(-20/7), 2^(-5/7).
    weights = [0.5 ** (d / 7) for d in (40, 20, 5)]
    assert [r.time_decay for r in created] == pytest.approx([w / sum(weights) for w in weights])
    # One push and one journey message before the creation: each the whole of its lens.
    push = by[("created", "push", str(history["push"]), hanmei, ago(12))]
    journey = by[("created", "journey", str(history["journey"]), lilei, ago(11))]
    assert all(getattr(push, m) == getattr(journey, m) == 1 for m in MODELS)

    # Won yesterday: the reads 50, 30, 15 and 3 days before; MQA 20 days ago makes the read
    # 15 days before the W milestone. The program executed 5 days ago counts for the win only.
    won = [
        by[("won", "content", paper, lilei, ago(50))],
        by[("won", "content", guide, old_li, ago(30))],
        by[("won", "content", paper, hanmei, ago(15))],
        by[("won", "content", guide, hanmei, ago(3))],
    ]
    assert [r.w_shaped for r in won] == pytest.approx([0.3, 0.1, 0.3, 0.3])
    assert [r.u_shaped for r in won] == pytest.approx([0.4, 0.1, 0.1, 0.4])
    assert by[("won", "program", str(history["program"]), None, ago(5))].linear == 1
    assert {(r.basis, r.dimension) for r in rows} == {
        ("created", "content"),
        ("created", "push"),
        ("created", "journey"),
        ("won", "content"),
        ("won", "push"),
        ("won", "journey"),
        ("won", "program"),
    }
    # Nothing of the other account, the other workspace, before the window, or no touch.
    assert str(history["video"]) not in {r.ref for r in rows}
    assert all(r.kind != "wecom.contact_edited" for r in rows)
    assert {r.workspace_id for r in rows} == {history["ws"]}
    for lens in {(r.basis, r.dimension) for r in rows}:
        mine = [r for r in rows if (r.basis, r.dimension) == lens]
        for model in MODELS:
            assert sum(getattr(r, model) for r in mine) == pytest.approx(1.0)


def test_influence_per_content_item_under_each_model(app, history):
    globex_id = workspace_id(app, "globex")
    with session_of(app) as session:
        attribute_opportunities(session, history["ws"])
        linear = influence(session, history["ws"], "content", "linear")
        first = influence(session, history["ws"], "content", "first_touch")
        globex = influence(session, globex_id, "content", "linear")
        totals = influence_totals(session, history["ws"], "content", "u_shaped")
    # Linear: the paper has 2 of 3 reads before the creation and 2 of 4 before the win.
    assert [(i.name, i.touches, i.opportunities, i.pipeline, i.won, i.revenue) for i in linear] == [
        ("白皮书", 2, 1, Decimal("200000.00"), 1, Decimal("150000.00")),
        ("选型指南", 1, 1, Decimal("100000.00"), 1, Decimal("150000.00")),
    ]
    assert [(i.name, i.pipeline, i.revenue) for i in first] == [
        ("白皮书", Decimal("300000.00"), Decimal("300000.00")),
        ("选型指南", Decimal("0.00"), Decimal("0.00")),
    ]
    assert globex == []
    # The whole dimension: the opportunity once, whatever the model.
    assert totals == Totals(3, 1, Decimal("300000.00"), 1, Decimal("300000.00"))
    with session_of(app) as session, pytest.raises(ValueError):
        influence(session, history["ws"], "content", "nonsense")


def test_a_date_range_counts_pipeline_created_and_revenue_won_in_it(app, history):
    with session_of(app) as session:
        attribute_opportunities(session, history["ws"])
        before = influence(session, history["ws"], "content", "linear", until=ago(2))
    # Created 10 days ago, won yesterday: only the pipeline is in the range.
    assert [(i.pipeline, i.revenue, i.won) for i in before] == [
        (Decimal("200000.00"), Decimal("0.00"), 0),
        (Decimal("100000.00"), Decimal("0.00"), 0),
    ]


def test_a_changed_opportunity_is_credited_again_by_the_job(app, history):
    assert changed_opportunity_ids_of(app, history["ws"]) == [history["opportunity"]]
    harpoon_of(app).queue.enqueue_followups({(Job.ATTRIBUTE_OPPORTUNITIES, history["ws"])})
    run_jobs(app)
    assert len(rows_of(app, history["opportunity"])) == 12
    assert changed_opportunity_ids_of(app, history["ws"]) == []
    # The deal now opened 2 days ago: the read 3 days ago joins its pipeline window.
    with session_of(app) as session:
        opportunity = session.get(Opportunity, history["opportunity"])
        opportunity.opened_at = ago(2)
        session.commit()
    assert changed_opportunity_ids_of(app, history["ws"]) == [history["opportunity"]]
    from app.jobs import attribute_changed_opportunities

    with app.app_context():
        attribute_changed_opportunities()
    created = [r for r in rows_of(app, history["opportunity"]) if r.basis == "created"]
    assert ago(3) in {r.occurred_at for r in created}
    assert changed_opportunity_ids_of(app, history["ws"]) == []


def changed_opportunity_ids_of(app, ws):
    with session_of(app) as session:
        return changed_opportunity_ids(session, ws)


def test_the_value_chain_of_a_content_item(app, history):
    openid = add_identity(app, history["lilei"], "openid", "o_lilei", channel_id=history["oa"])
    add_identity(app, history["hanmei"], "phone", "13800000000")
    with session_of(app) as session:
        session.get(Identity, openid).following = True
        session.get(Contact, history["hanmei"]).lead_score = 80
        session.commit()
        chain = value_chain(session, history["ws"], history["paper"])
        video = value_chain(session, history["ws"], history["video"])
    assert [(s.key, s.value) for s in chain] == [
        ("readers", 2),
        ("followers", 1),
        ("members", 1),
        ("mql", 1),
        ("mqa", 1),
        ("opportunities", 1),
        ("revenue", Decimal("300000.00")),
    ]
    # The video: 李雷 200 days ago (before the deal opened) and 路人 of 西部能源, which has
    # no opportunity; the other workspace's reads of it are not ours.
    assert [(s.key, s.value) for s in video] == [
        ("readers", 2),
        ("followers", 1),
        ("members", 0),
        ("mql", 0),
        ("mqa", 1),
        ("opportunities", 1),
        ("revenue", Decimal("300000.00")),
    ]


def test_a_campaign_with_tabs_backslashes_and_newlines_is_stored_as_sent(app):
    account = make_account(app, "华北电力")
    person = make_contact(app, "王五", account_id=account)
    odd = "春季\t峰会\\2026\n第二场\r"
    make_interaction(app, person, "form.submit", at=ago(3), campaign=odd, form_id=9)
    opportunity = make_opportunity(app, account, opened_at=ago(1))
    with session_of(app) as session:
        attribute_opportunities(session, workspace_id(app))
    rows = {r.dimension: r for r in rows_of(app, opportunity)}
    assert rows["campaign"].ref == odd and rows["form"].ref == "9"
    assert rows["campaign"].contact_id == person and rows["campaign"].occurred_at == ago(3)
    assert rows["campaign"].linear == 1.0


# ---- fixa ----


def test_a_merged_contact_is_credited_once_to_its_survivors_account(app):
    """keep and drop both on 华南物流, drop merged into keep: a push to each is one touch
    each (linear ½), not drop's twice; a contact merged across accounts credits only the
    survivor's account."""
    account = make_account(app, "华南物流")
    other = make_account(app, "西北化工")
    keep = make_contact(app, "保留", account_id=account)
    drop = make_contact(app, "并入", account_id=account, merged_into_id=keep)
    moved = make_contact(app, "跨户", account_id=other, merged_into_id=keep)
    oa = make_oa(app)
    first, second, third = (make_push(app, oa, status="sent") for _ in range(3))
    make_push_sent(app, first, drop, at=ago(5))
    make_push_sent(app, second, keep, at=ago(4))
    make_push_sent(app, third, moved, at=ago(6))
    mine = make_opportunity(app, account, opened_at=ago(1))
    theirs = make_opportunity(app, other, opened_at=ago(1))
    with session_of(app) as session:
        attribute_opportunities(session, workspace_id(app))
    rows = [r for r in rows_of(app, mine) if r.dimension == "push"]
    assert sorted((r.ref, r.contact_id, r.linear) for r in rows) == sorted(
        [
            (str(first), drop, pytest.approx(1 / 3)),
            (str(second), keep, pytest.approx(1 / 3)),
            (str(third), moved, pytest.approx(1 / 3)),
        ]
    )
    assert rows_of(app, theirs) == []


def test_two_runs_at_once_on_one_opportunity_leave_one_set_of_rows(app, history):
    """The second run waits for the first's lock on the opportunity, then rewrites its rows
    instead of adding a second set beside the ones it could not see."""
    if harpoon_of(app).db.engine.dialect.name != "postgresql":
        pytest.skip("the embedded database runs one writing transaction at a time")
    ws, opportunity = history["ws"], history["opportunity"]
    outcome: list = []

    def second_run():
        try:
            with session_of(app) as session:
                outcome.append(attribute_opportunities(session, ws, [opportunity]))
        except Exception as exc:  # the main thread asserts on it
            outcome.append(exc)

    with session_of(app) as first:
        assert attribute_opportunities(first, ws, [opportunity], commit=False).rows == 12
        running = threading.Thread(target=second_run)
        running.start()
        time.sleep(1)  # the second run reaches the opportunity
        first.commit()
    running.join(timeout=30)
    assert len(outcome) == 1 and not isinstance(outcome[0], Exception), outcome
    assert len(rows_of(app, opportunity)) == 12


def test_influence_sums_shares_of_large_amounts_to_the_cent(app):
    """200 touches each crediting the whole of ¥999,999,999,999.99 and three crediting a
    third of ¥100: as floats the sums are off by cents."""
    if harpoon_of(app).db.engine.dialect.name != "postgresql":
        pytest.skip("the embedded database keeps amounts as floats")
    ws = workspace_id(app)
    account = make_account(app, "华东制造")
    big = make_opportunity(app, account, amount="999999999999.99", opened_at=ago(1))
    small = make_opportunity(app, account, amount="100", opened_at=ago(1))
    with session_of(app) as session:
        for opportunity, ref, share, number in ((big, "big", 1.0, 200), (small, "small", 1 / 3, 3)):
            session.add_all(
                AttributionTouch(
                    workspace_id=ws,
                    opportunity_id=opportunity,
                    basis="created",
                    source="interaction",
                    source_id=n,
                    kind="form.submit",
                    dimension="campaign",
                    ref=ref,
                    occurred_at=ago(2),
                    **{model: share for model in MODELS},
                )
                for n in range(number)
            )
        session.commit()
        rows = {row.ref: row.pipeline for row in influence(session, ws, "campaign", "linear")}
        totals = influence_totals(session, ws, "campaign", "linear")
    assert rows == {"big": Decimal("199999999999998.00"), "small": Decimal("100.00")}
    assert totals.pipeline == Decimal("200000000000098.00")
