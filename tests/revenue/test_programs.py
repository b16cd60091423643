"""Tier programs: a menu item validated against the scoring model's tiers, an order ticked
for an account of its tier, decided, executed with its cost or cancelled, each step on the
account's timeline; budgets; and nothing of another workspace named."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from models import AccountEvent, AccountEventKind, ProgramOrder, utcnow
from revenue import programs
from revenue.programs import ProgramRefused
from tests.factories import (
    make_account,
    make_program,
    make_program_order,
    make_user,
    workspace_id,
)
from tests.helpers import all_of, harpoon_of, session_of


def menu_item(**overrides) -> dict:
    return {
        "tier": 1,
        "name": "定制白皮书",
        "kind": "custom_content",
        "description": None,
        "budget": Decimal("50000"),
        "unit_cost": Decimal("8000.50"),
        "active": True,
        **overrides,
    }


def test_a_menu_item_needs_a_model_tier_a_kind_a_unique_name_and_no_negative_amounts(app):
    ws = workspace_id(app)
    make_program(app, "定制白皮书", tier=1)
    with session_of(app) as session:
        assert programs.model_tiers(session, ws) == [1, 2, 3]
        errors = programs.program_errors(
            session,
            ws,
            menu_item(tier=4, kind="yacht", budget=Decimal("-1"), unit_cost=Decimal("-0.01")),
        )
        assert errors == {
            "tier": [programs.NOT_A_TIER],
            "kind": [programs.NOT_A_KIND],
            "budget": [programs.NEGATIVE],
            "unit_cost": [programs.NEGATIVE],
        }
        assert programs.program_errors(session, ws, menu_item(name="定制白皮书 ".strip())) == {
            "name": [programs.NAME_TAKEN]
        }
        assert programs.program_errors(session, ws, menu_item(tier=2)) == {}
        saved = programs.save_program(session, ws, menu_item(tier=2))
        session.commit()
        # Its own name is not "taken" when the item is edited.
        assert programs.program_errors(session, ws, menu_item(tier=2), saved) == {}
        assert saved.budget == Decimal("50000.00") and saved.unit_cost == Decimal("8000.50")


def test_the_flow_from_tick_to_execution_is_on_the_timeline(app):
    ws = workspace_id(app)
    seller = make_user(app, "sales")
    marketer = make_user(app, "marketer")
    account = make_account(app, "华信科技", tier=1, owner_id=seller)
    program = make_program(app, "闭门会邀请", tier=1, budget="10000", unit_cost="2000")
    ran_on = utcnow() - timedelta(days=2)
    with session_of(app) as session:
        order = programs.request_program(
            session, ws, program_id=program, account_id=account, user_id=seller, note="CIO 感兴趣"
        )
        assert order.status == "requested" and order.requested_by == seller
        programs.approve(session, order, user_id=marketer, note="本月名额")
        assert (order.status, order.decided_by, order.note) == ("approved", marketer, "本月名额")
        assert programs.budget_of(session, session.get(programs.Program, program)).committed == 2000
        programs.execute(
            session, order, user_id=marketer, cost=Decimal("1850.25"), executed_at=ran_on
        )
        session.commit()
        budget = programs.budget_of(session, session.get(programs.Program, program))
        assert (budget.committed, budget.spent, budget.remaining) == (
            0,
            Decimal("1850.25"),
            Decimal("8149.75"),
        )
    [row] = all_of(app, ProgramOrder)
    # What attribution reads: status executed, the day it ran, the exact cost.
    assert (row.status, row.cost) == ("executed", Decimal("1850.25"))
    assert abs(row.executed_at - ran_on) < timedelta(seconds=1)
    events = all_of(app, AccountEvent)
    assert [e.kind for e in events] == [AccountEventKind.PROGRAM] * 3
    assert [e.data["status"] for e in events] == ["requested", "approved", "executed"]
    assert events[0].user_id == seller and events[2].user_id == marketer
    assert "1,850.25" in events[2].text and events[2].data["program_order_id"] == row.id


def test_wrong_tier_no_tier_paused_and_duplicate_open_orders_are_refused(app):
    ws = workspace_id(app)
    tier_two = make_account(app, "二级公司", tier=2)
    untiered = make_account(app, "无层级公司")
    tier_one = make_account(app, "一级公司", tier=1)
    program = make_program(app, "高管拜访", tier=1)
    paused = make_program(app, "礼品寄送", tier=1, active=False)

    def tick(program_id, account_id):
        with session_of(app) as session:
            with pytest.raises(ProgramRefused) as refused:
                programs.request_program(
                    session, ws, program_id=program_id, account_id=account_id, user_id=None
                )
            return refused.value.message

    assert tick(program, tier_two) == programs.OTHER_TIER
    assert tick(program, untiered) == programs.NO_TIER
    assert tick(paused, tier_one) == programs.INACTIVE
    first = make_program_order(app, program, tier_one)
    assert tick(program, tier_one) == programs.ALREADY_OPEN
    with session_of(app) as session:
        programs.reject(session, session.get(ProgramOrder, first), user_id=None, note="预算不足")
        session.commit()
    # Rejected is closed: it may be asked again.
    second = make_program_order(app, program, tier_one)
    assert second != first
    assert len(all_of(app, ProgramOrder)) == 2


def test_a_tap_sent_twice_with_its_nonce_orders_once(app):
    ws = workspace_id(app)
    account = make_account(app, "华信科技", tier=1)
    program = make_program(app, "闭门会邀请", tier=1)
    with session_of(app) as session:
        for _tap in range(2):
            order = programs.request_program(
                session, ws, program_id=program, account_id=account, user_id=None, nonce="tap-1"
            )
            session.commit()
        assert order.status == "requested"
    assert len(all_of(app, ProgramOrder)) == 1 and len(all_of(app, AccountEvent)) == 1


def test_approving_past_the_budget_needs_a_reason_kept_in_the_note(app):
    account = make_account(app, "华信科技", tier=1)
    other = make_account(app, "远景能源", tier=1)
    program = make_program(app, "高管拜访", tier=1, budget="3000", unit_cost="2000")
    make_program_order(app, program, account, status="approved")
    waiting = make_program_order(app, program, other)
    with session_of(app) as session:
        order = session.get(ProgramOrder, waiting)
        with pytest.raises(ProgramRefused) as refused:
            programs.approve(session, order, user_id=None)
        assert (refused.value.message, refused.value.field) == (
            programs.OVER_BUDGET,
            "over_budget_reason",
        )
        programs.approve(session, order, user_id=None, over_budget_reason="战略客户，VP 特批")
        session.commit()
        assert order.status == "approved" and "超预算批准：战略客户，VP 特批" in order.note
        budget = programs.budget_of(session, session.get(programs.Program, program))
        assert budget.remaining == Decimal("-1000") and budget.used_share == 1.0
    last = all_of(app, AccountEvent)[-1]
    assert last.data["over_budget"] is True and "超预算" in last.text


def test_steps_out_of_order_and_bad_costs_are_refused(app):
    account = make_account(app, "华信科技", tier=1)
    program = make_program(app, "精准广告", tier=1)
    requested = make_program_order(app, program, account)
    with session_of(app) as session:
        order = session.get(ProgramOrder, requested)
        now = utcnow()
        with pytest.raises(ProgramRefused, match="approved"):
            programs.execute(session, order, user_id=None, cost=Decimal(1), executed_at=now)
        with pytest.raises(ProgramRefused) as refused:
            programs.reject(session, order, user_id=None, note="  ")
        assert refused.value.field == "note"
        programs.approve(session, order, user_id=None)
        for cost, at, field in (
            (None, now, "cost"),
            (Decimal("-5"), now, "cost"),
            (Decimal("5"), now + timedelta(days=1), "executed_on"),
        ):
            with pytest.raises(ProgramRefused) as refused:
                programs.execute(session, order, user_id=None, cost=cost, executed_at=at)
            assert refused.value.field == field
        programs.cancel(session, order, user_id=None, note="客户推迟")
        assert order.status == "cancelled" and order.executed_at is None
        with pytest.raises(ProgramRefused):
            programs.cancel(session, order, user_id=None)


def test_another_workspaces_program_or_account_is_refused(app):
    ours = workspace_id(app)
    workspace_id(app, "globex")
    our_account = make_account(app, "华信科技", tier=1)
    their_account = make_account(app, "华信科技", tier=1, workspace="globex")
    our_program = make_program(app, "闭门会邀请", tier=1)
    their_program = make_program(app, "闭门会邀请", tier=1, workspace="globex")
    make_program_order(app, their_program, their_account, workspace="globex", status="executed")
    with session_of(app) as session:
        for program_id, account_id, message in (
            (their_program, our_account, programs.UNKNOWN_PROGRAM),
            (our_program, their_account, programs.UNKNOWN_ACCOUNT),
        ):
            with pytest.raises(ProgramRefused) as refused:
                programs.request_program(
                    session, ours, program_id=program_id, account_id=account_id, user_id=None
                )
            assert refused.value.message == message
        assert session.scalars(programs.orders_query(ours)).all() == []
        [budget] = programs.budgets(session, ours, programs.menu(session, ours))
        assert budget.spent == 0
        their_order = session.scalar(select(ProgramOrder.id))
        assert programs.order_of(session, ours, their_order) is None
        assert programs.program_of(session, ours, their_program) is None


# ---- two people at the same moment (PostgreSQL: SQLite runs one writer at a time) ---------


def _postgresql_only(app):
    if harpoon_of(app).db.engine.dialect.name != "postgresql":
        pytest.skip("the embedded database runs one writing transaction at a time")


def _while_first_holds(app, first, second_step):
    """Run `second_step` in another session while `first` holds its uncommitted work; it
    must wait for it; then commit the first and let the second finish."""
    outcome = {}

    def second():
        with session_of(app) as session:
            try:
                outcome["result"] = second_step(session)
                session.commit()
            except ProgramRefused as exc:
                outcome["refused"] = exc.message

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(1.0)
    waited = thread.is_alive()
    first.commit()
    thread.join(10)
    return waited, outcome


@pytest.mark.parametrize("same_tap", [False, True])
def test_two_taps_at_the_same_moment_make_one_order(app, same_tap):
    """Both pass the read-only checks; the open-order index lets one insert win. The other
    tap is "already ordered", or, the same tap retried, gets the winner's order."""
    _postgresql_only(app)
    ws = workspace_id(app)
    seller = make_user(app, "sales")
    account = make_account(app, "华信科技", tier=1, owner_id=seller)
    program = make_program(app, "闭门会邀请", tier=1)
    tap = {"program_id": program, "account_id": account, "user_id": seller}
    with session_of(app) as first:
        won = programs.request_program(first, ws, **tap, nonce="tap-1").id
        waited, outcome = _while_first_holds(
            app,
            first,
            lambda session: (
                programs.request_program(
                    session, ws, **tap, nonce="tap-1" if same_tap else "tap-2"
                ).id
            ),
        )
    assert waited  # on the first's uncommitted row in the index
    assert outcome == ({"result": won} if same_tap else {"refused": programs.ALREADY_OPEN})
    assert len(all_of(app, ProgramOrder)) == 1


def test_two_approvals_at_the_same_moment_cannot_both_fit_the_budget(app):
    """The program's row is locked before the budget is summed: the second approval sees
    the first's commitment and needs a reason."""
    _postgresql_only(app)
    ws = workspace_id(app)
    seller = make_user(app, "sales")
    program = make_program(app, "闭门会邀请", tier=1, budget="2000", unit_cost="2000")
    orders = [
        make_program_order(app, program, make_account(app, name, tier=1, owner_id=seller))
        for name in ("华信科技", "远景能源")
    ]
    with session_of(app) as first:
        programs.approve(first, programs.order_of(first, ws, orders[0]), user_id=None)
        waited, outcome = _while_first_holds(
            app,
            first,
            lambda session: (
                programs.approve(
                    session, programs.order_of(session, ws, orders[1]), user_id=None
                ).status
            ),
        )
    assert waited
    assert outcome == {"refused": programs.OVER_BUDGET}
    assert sorted(order.status for order in all_of(app, ProgramOrder)) == [
        "approved",
        "requested",
    ]
