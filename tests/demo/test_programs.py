"""The demo's tier programs: a menu per tier with budgets, and orders in every status on
the accounts that have a tier, seeded once."""

from collections import Counter

from demo.programs import seed_demo_programs
from models import AccountEvent, Program, ProgramOrder
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
