"""Routing hot accounts without an owner, and the first-touch SLA with a moved clock."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from marshmallow import ValidationError
from sqlalchemy import select

from core.jobs import Followups
from models import (
    Account,
    AccountEvent,
    RoutingAssignment,
    RoutingRule,
    StaffNotification,
    StageChange,
    Task,
    TaskStatus,
)
from sales import routing
from sales.tasks import add_note, close_task, create_task
from scoring.engine import OwnerAlert
from tests.factories import (
    add_contact,
    make_account,
    make_routing_rule,
    make_salesperson,
    make_user,
    workspace_id,
)
from tests.helpers import harpoon_of, session_of

# Friday 17:00 in Shanghai: 4 working hours later is Monday 12:00 (04:00 UTC).
FRIDAY_5PM = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
MONDAY_NOON = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)


def mqa(account_id: int) -> OwnerAlert:
    return OwnerAlert(account_id, "account_mqa", "MQA", f"mqa:{account_id}")


def route(app, *alerts, contacts=(), now=FRIDAY_5PM):
    ws = workspace_id(app)
    with session_of(app) as session:
        made = routing.route(session, ws, alerts, contacts, Followups(), now=now)
        session.commit()
        return [(row.account_id, row.user_id, row.outcome) for row in made]


def check(app, now, **settings):
    ws = workspace_id(app)
    with session_of(app) as session:
        if settings:
            values = {**_settings_of(routing.load_settings(session, ws)), **settings}
            routing.save_settings(session, ws, values)
        result = routing.check_sla(session, ws, Followups(), now=now)
        session.commit()
        return result


def _settings_of(row) -> dict:
    names = ("sla_hours", "work_start", "work_end", "work_days", "timezone")
    return {
        **{name: getattr(row, name) for name in names},
        "breach_action": row.breach_action,
        "manager_id": row.manager_id,
    }


def timeline(app, account_id) -> list[tuple[str, str]]:
    with session_of(app) as session:
        return session.execute(
            select(AccountEvent.kind, AccountEvent.text)
            .where(AccountEvent.account_id == account_id)
            .order_by(AccountEvent.id)
        ).all()


def notified(app) -> list[tuple[str, str]]:
    with session_of(app) as session:
        return session.execute(
            select(StaffNotification.staff_userid, StaffNotification.kind).order_by(
                StaffNotification.id
            )
        ).all()


@pytest.fixture
def sales(app):
    return {
        "张三": make_salesperson(app, "张三", "zhangsan"),
        "李四": make_salesperson(app, "李四", "lisi"),
    }


def test_rules_match_by_territory_and_the_first_matching_rule_with_room_wins():
    east = RoutingRule(
        name="华东制造", regions=["华东"], industries=["制造"], tiers=[], user_ids=[1], enabled=True
    )
    tier_one = RoutingRule(
        name="一级", regions=[], industries=[], tiers=[1], user_ids=[2], enabled=True
    )
    anyone = RoutingRule(
        name="兜底", regions=[], industries=[], tiers=[], user_ids=[3], enabled=True
    )
    factory = Account(region="华东", industry="制造", tier=2)
    bank = Account(region=" 华东 ", industry="金融", tier=1)
    assert routing.rule_matches(east, factory) and not routing.rule_matches(east, bank)
    assert routing.rule_matches(tier_one, bank) and not routing.rule_matches(tier_one, factory)
    rules = [east, tier_one, anyone]
    assert routing.choose(rules, factory, {1, 2, 3}, {})[1] == 1
    assert routing.choose(rules, bank, {1, 2, 3}, {})[1] == 2
    assert routing.choose(rules, Account(region="华南"), {1, 2, 3}, {})[1] == 3
    # An inactive user is nobody to route to: the next rule.
    assert routing.choose(rules, factory, {2, 3}, {})[1] == 3


def test_round_robin_rotates_and_least_loaded_evens_out(app, sales):
    zhang, li = sales["张三"], sales["李四"]
    make_routing_rule(app, "全国", [zhang, li])
    accounts = [make_account(app, f"客户{n}", is_target=True) for n in range(3)]
    owners = [user for _a, user, _o in route(app, *(mqa(a) for a in accounts))]
    assert owners == [zhang, li, zhang]
    later = make_account(app, "客户3")
    assert route(app, mqa(later))[0][1] == li  # the rule remembers where it was
    with session_of(app) as session:
        rule = session.scalars(select(RoutingRule)).one()
        rule.method = "least_loaded"
        session.commit()
    assert route(app, mqa(make_account(app, "客户4")))[0][1] == zhang  # 2 each: the first


def test_a_user_at_the_capacity_cap_is_skipped(app, sales):
    zhang, li = sales["张三"], sales["李四"]
    make_routing_rule(app, "华东", [zhang, li], capacity=1, regions=["华东"])
    first, second, third = (make_account(app, f"客户{n}", region="华东") for n in range(3))
    assert [user for _a, user, _o in route(app, mqa(first), mqa(second))] == [zhang, li]
    # Both at the cap: nobody has room.
    assert route(app, mqa(third)) == [(third, None, "unassigned")]


def test_nobody_eligible_leaves_it_unassigned_and_tells_the_admins_once(app, sales):
    admin = make_salesperson(app, "王经理", "wangjl", role="admin")
    make_routing_rule(app, "华南", [sales["张三"]], regions=["华南"])
    account = make_account(app, "北方重工", region="华北")
    assert route(app, mqa(account)) == [(account, None, "unassigned")]
    assert route(app, mqa(account), now=FRIDAY_5PM + timedelta(hours=1)) == []
    with session_of(app) as session:
        assert session.get(Account, account).owner_id is None
    assert notified(app) == [("wangjl", "routing_unassigned")]
    (event,) = timeline(app, account)
    assert event == ("routed", "达到 MQA，没有匹配的分配规则，未能分配")
    assert admin  # the admin is staff: they were the one told
    # A day later it is tried, and reported, again.
    assert route(app, mqa(account), now=FRIDAY_5PM + timedelta(hours=25))[0][2] == "unassigned"


def test_mqa_without_owner_routes_once_with_timeline_task_and_notification(app, sales):
    zhang = sales["张三"]
    make_routing_rule(app, "华东制造", [zhang], regions=["华东"])
    account = make_account(app, "华信制造", region="华东", is_target=True)
    assert route(app, mqa(account)) == [(account, zhang, "pending")]
    assert route(app, mqa(account)) == []  # the retried batch: owned now, left alone
    with session_of(app) as session:
        assert session.get(Account, account).owner_id == zhang
        (assignment,) = session.scalars(select(RoutingAssignment)).all()
        assert assignment.sla_due_at == MONDAY_NOON
        (task,) = session.scalars(select(Task)).all()
        assert (task.assignee_id, task.source, task.due_at) == (zhang, "routing", MONDAY_NOON)
        assert task.dedupe_key == f"routing:{assignment.id}"
    assert timeline(app, account)[0] == ("routed", "达到 MQA，按规则「华东制造」轮询分配给 张三")
    assert notified(app) == [("zhangsan", "account_routed")]


def test_a_new_person_of_a_target_account_routes_it(app, sales, oa_channel):
    make_routing_rule(app, "全国", [sales["李四"]])
    target = make_account(app, "华信", is_target=True)
    other = make_account(app, "路人公司")  # not a target: a new person there routes nothing
    person = add_contact(app, openid="o-1", channel_id=oa_channel, account_id=target, name="王工")
    stranger = add_contact(app, openid="o-2", channel_id=oa_channel, account_id=other)
    assert route(app, contacts=[person, stranger]) == [(target, sales["李四"], "pending")]
    assert (
        timeline(app, target)[0][1] == "目标账户出现联系人「王工」，按规则「全国」轮询分配给 李四"
    )


def test_an_owned_account_is_not_rerouted(app, sales, oa_channel):
    make_routing_rule(app, "全国", [sales["李四"]])
    owned = make_account(app, "华信", is_target=True, owner_id=sales["张三"])
    person = add_contact(app, openid="o-1", channel_id=oa_channel, account_id=owned)
    assert route(app, mqa(owned), contacts=[person]) == []
    with session_of(app) as session:
        assert session.get(Account, owned).owner_id == sales["张三"]
        assert session.scalars(select(RoutingAssignment)).all() == []


def test_without_a_rule_nothing_is_routed(app, sales):
    account = make_account(app, "华信")
    assert route(app, mqa(account)) == []
    assert notified(app) == []


def test_the_sla_is_met_by_the_owners_note(app, sales):
    zhang = sales["张三"]
    make_routing_rule(app, "全国", [zhang])
    account = make_account(app, "华信")
    route(app, mqa(account))
    ws = workspace_id(app)
    with session_of(app) as session:
        # Someone else's note is no first touch of the owner's.
        add_note(
            session,
            workspace_id=ws,
            text="同事备注",
            author_id=sales["李四"],
            lanes=4,
            account_id=account,
            now=FRIDAY_5PM + timedelta(minutes=5),
        )
        add_note(
            session,
            workspace_id=ws,
            text="已电话联系，约了周一见面",
            author_id=zhang,
            lanes=4,
            account_id=account,
            now=FRIDAY_5PM + timedelta(minutes=30),
        )
        session.commit()
    assert check(app, FRIDAY_5PM + timedelta(minutes=10)).met == 0  # the clock: not yet
    assert check(app, FRIDAY_5PM + timedelta(hours=1)).met == 1
    with session_of(app) as session:
        assignment = session.scalars(select(RoutingAssignment)).one()
        assert (assignment.outcome, assignment.first_touch) == ("met", "note")
        assert assignment.first_touch_at == FRIDAY_5PM + timedelta(minutes=30)
    assert timeline(app, account)[-1] == ("sla_met", "张三 在时限内完成首次跟进（写了备注）")
    assert check(app, MONDAY_NOON + timedelta(days=1)).escalated == 0  # met stays met


def test_a_done_task_or_a_stage_move_is_a_first_touch_but_a_skipped_task_is_not(app, sales):
    zhang = sales["张三"]
    make_routing_rule(app, "全国", [zhang])
    by_task, by_stage = make_account(app, "甲"), make_account(app, "乙")
    route(app, mqa(by_task), mqa(by_stage))
    ws = workspace_id(app)
    with session_of(app) as session:
        first = session.scalars(select(Task).where(Task.account_id == by_task)).one()
        close_task(
            session,
            first,
            status=TaskStatus.SKIPPED,
            outcome=None,
            user_id=zhang,
            lanes=4,
            now=FRIDAY_5PM + timedelta(minutes=1),
        )
        session.add(
            StageChange(
                workspace_id=ws,
                subject="account",
                subject_id=by_stage,
                from_stage="mqa",
                to_stage="meeting",
                reason="约了会议",
                user_id=zhang,
                changed_at=FRIDAY_5PM + timedelta(minutes=2),
            )
        )
        session.commit()
    assert check(app, FRIDAY_5PM + timedelta(minutes=3)).met == 1  # the stage move only
    with session_of(app) as session:
        call = create_task(
            session,
            workspace_id=ws,
            title="给李总打电话",
            due_at=MONDAY_NOON,
            account_id=by_task,
            assignee_id=zhang,
            now=FRIDAY_5PM + timedelta(minutes=3),
        )
        close_task(
            session,
            call,
            status=TaskStatus.DONE,
            outcome="已沟通",
            user_id=zhang,
            lanes=4,
            now=FRIDAY_5PM + timedelta(minutes=4),
        )
        session.commit()
    assert check(app, FRIDAY_5PM + timedelta(minutes=5)).met == 1
    with session_of(app) as session:
        touches = session.scalars(
            select(RoutingAssignment.first_touch).order_by(RoutingAssignment.account_id)
        ).all()
        assert touches == ["task_closed", "stage"]


def test_a_breach_escalates_to_the_manager_and_the_owner_with_a_moved_clock(app, sales):
    zhang = sales["张三"]
    manager = make_salesperson(app, "王经理", "wangjl", role="marketer")
    make_routing_rule(app, "全国", [zhang])
    account = make_account(app, "华信")
    route(app, mqa(account))
    assert check(app, MONDAY_NOON - timedelta(minutes=1), manager_id=manager).escalated == 0
    assert check(app, MONDAY_NOON).escalated == 1
    assert check(app, MONDAY_NOON + timedelta(hours=1)).escalated == 0  # once
    with session_of(app) as session:
        assert session.scalars(select(RoutingAssignment.outcome)).one() == "escalated"
        assert session.get(Account, account).owner_id == zhang  # escalation keeps the owner
    kind, text = timeline(app, account)[-1]
    assert kind == "sla_escalated"
    assert text == "张三 未在 12-07 12:00 前首次跟进，截至 12-07 12:00 仍未跟进，已上报 王经理"
    assert notified(app)[1:] == [("wangjl", "sla_escalated"), ("zhangsan", "sla_escalated")]


def test_reassign_mode_reassigns_once_then_escalates(app, sales):
    zhang, li = sales["张三"], sales["李四"]
    make_routing_rule(app, "全国", [zhang, li])
    account = make_account(app, "华信")
    route(app, mqa(account))
    result = check(app, MONDAY_NOON, breach_action="reassign")
    assert (result.reassigned, result.escalated) == (1, 0)
    with session_of(app) as session:
        first, second = session.scalars(
            select(RoutingAssignment).order_by(RoutingAssignment.id)
        ).all()
        assert (first.outcome, second.outcome, second.user_id) == ("reassigned", "pending", li)
        assert second.attempt == 2
        assert second.sla_due_at == MONDAY_NOON + timedelta(hours=4)
        assert session.get(Account, account).owner_id == li
        tasks = session.scalars(select(Task.assignee_id).order_by(Task.id)).all()
        assert tasks == [zhang, li]
    kind, text = timeline(app, account)[-2]  # the new owner's task follows
    assert kind == "sla_reassigned"
    assert text == "张三 未在 12-07 12:00 前首次跟进，按规则「全国」改派给 李四"
    assert ("lisi", "account_routed") in notified(app)
    assert ("zhangsan", "sla_reassigned") in notified(app)
    # 李四 misses it too: the second breach escalates, and the account stays with them.
    result = check(app, MONDAY_NOON + timedelta(hours=4))
    assert (result.reassigned, result.escalated) == (0, 1)
    with session_of(app) as session:
        assert session.get(Account, account).owner_id == li


def test_a_rule_naming_another_workspaces_user_is_refused(app, sales):
    stranger = make_user(app, role="sales", workspace="other")
    ws = workspace_id(app)
    with session_of(app) as session, pytest.raises(ValidationError) as refused:
        routing.save_rule(
            session,
            ws,
            {
                "name": "越界",
                "enabled": True,
                "regions": [],
                "industries": [],
                "tiers": [],
                "user_ids": [sales["张三"], stranger],
                "method": "round_robin",
                "capacity": None,
            },
        )
    assert refused.value.messages == {"user_ids": ["Not a user of this workspace."]}


def test_a_rule_stored_around_the_check_never_routes_to_another_workspaces_user(app, sales):
    stranger = make_user(app, role="sales", workspace="other")
    ws = workspace_id(app)
    with session_of(app) as session:
        session.add(
            RoutingRule(
                workspace_id=ws,
                name="越界",
                position=1,
                regions=[],
                industries=[],
                tiers=[],
                user_ids=[stranger],
            )
        )
        session.commit()
    account = make_account(app, "华信")
    assert route(app, mqa(account)) == [(account, None, "unassigned")]


def test_a_breach_check_and_a_drain_routing_at_once_take_their_locks_in_one_order(app, sales):
    """The drain's route() locks the accounts, then the rules; the check that reassigns a
    breached account does the same, so neither waits on the other in a circle."""
    if harpoon_of(app).db.engine.dialect.name != "postgresql":
        pytest.skip("the embedded database runs one writing transaction at a time")
    make_routing_rule(app, "全国", [sales["张三"], sales["李四"]])
    account = make_account(app, "华信")
    route(app, mqa(account))
    check(app, FRIDAY_5PM, breach_action="reassign")
    outcome: list = []

    def breach_check():
        try:
            outcome.append(check(app, MONDAY_NOON))
        except Exception as exc:  # the main thread asserts on it
            outcome.append(exc)

    with session_of(app) as drain:
        drain.scalars(
            select(Account).where(Account.id == account).with_for_update(key_share=True)
        ).all()
        checking = threading.Thread(target=breach_check)
        checking.start()
        time.sleep(0.5)  # the check reaches its locks
        drain.scalars(select(RoutingRule).order_by(RoutingRule.id).with_for_update()).all()
        drain.commit()
    checking.join(timeout=30)
    assert len(outcome) == 1 and not isinstance(outcome[0], Exception), outcome
    assert outcome[0].reassigned == 1


def test_the_owners_routing_notes_read_short_under_the_account_in_a_digest(app, sales):
    make_routing_rule(app, "全国", [sales["张三"]])
    account = make_account(app, "华信")
    route(app, mqa(account))
    check(app, MONDAY_NOON)
    with session_of(app) as session:
        notes = session.execute(
            select(StaffNotification.kind, StaffNotification.summary, StaffNotification.account_id)
            .where(StaffNotification.staff_userid == "zhangsan")
            .order_by(StaffNotification.id)
        ).all()
    assert notes == [
        ("account_routed", "分配给你，请在 12-07 12:00 前首次跟进", account),
        ("sla_escalated", "首次跟进超时，请尽快跟进", account),
    ]
