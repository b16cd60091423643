"""The demo's tier programs: a menu per tier with budgets, and orders in every status on
the accounts that have a tier, seeded once."""

from collections import Counter

from demo.programs import seed_demo_programs
from models import Account, AccountEvent, Program, ProgramOrder, Task
from tests.factories import make_account, make_user, workspace_id
from tests.helpers import all_of, session_of


def test_menus_and_orders_in_every_status_once(app):
    ws = workspace_id(app)
    marketer = make_user(app, "marketer")
    seller = make_user(app, "sales")
    for n in range(5):
        make_account(app, f"公司{n}", tier=1 + n % 3, owner_id=seller if n % 2 else None)
    make_account(app, "无层级公司")
    for _run in range(2):
        with session_of(app) as session:
            seed_demo_programs(session, ws, marketer, [seller])
    menus = Counter(program.tier for program in all_of(app, Program))
    assert menus == {1: 5, 2: 4, 3: 2}
    assert {p.name for p in all_of(app, Program) if p.tier == 1} == {
        "闭门会邀请",
        "定制白皮书",
        "礼品寄送",
        "高管拜访",
        "精准广告",
    }
    orders = all_of(app, ProgramOrder)
    assert set(Counter(o.status for o in orders)) == {
        "requested",
        "approved",
        "executed",
        "rejected",
        "cancelled",
    }
    programs = {p.id: p for p in all_of(app, Program)}
    executed = [o for o in orders if o.status == "executed"]
    assert all(o.executed_at is not None and o.cost is not None for o in executed)
    assert all(o.cost < programs[o.program_id].unit_cost for o in executed)
    assert len(all_of(app, AccountEvent)) >= len(orders)


def test_the_owner_follows_up_each_executed_program_as_in_the_admin(app):
    """The rule the admin's execute step applies (sales.tasks.follow_up_program): the
    account's owner gets one task per executed order; an account without owner, none."""
    ws = workspace_id(app)
    marketer = make_user(app, "marketer")
    seller = make_user(app, "sales")
    for n in range(5):
        make_account(app, f"公司{n}", tier=1 + n % 3, owner_id=seller if n % 2 else None)
    with session_of(app) as session:
        seed_demo_programs(session, ws, marketer, [seller])
    accounts = {account.id: account for account in all_of(app, Account)}
    executed = [o for o in all_of(app, ProgramOrder) if o.status == "executed"]
    owned = [o for o in executed if accounts[o.account_id].owner_id is not None]
    assert owned, "the plan executes an order on an owned account"
    tasks = {task.dedupe_key: task for task in all_of(app, Task)}
    names = {program.id: program.name for program in all_of(app, Program)}
    for order in executed:
        task = tasks.get(f"program-executed:{order.id}")
        if order in owned:
            assert (task.assignee_id, task.account_id) == (seller, order.account_id)
            assert task.title == f"跟进营销计划「{names[order.program_id]}」"
        else:
            assert task is None
