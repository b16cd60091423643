"""The demo's tier programs: a menu per tier with budgets, and a few orders in each status
on accounts that have a tier, written through revenue.programs as sales and marketing
would (so the timeline, the budgets and attribution's executed touches are real)."""

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Account, Program, ProgramKind, utcnow
from revenue import programs
from sales.tasks import follow_up_program

# (name, kind, description, unit cost): the same menu on every tier, richer at the top.
MENU = [
    ("闭门会邀请", ProgramKind.EVENT_INVITE, "邀请关键人参加行业闭门交流会", "3000"),
    ("定制白皮书", ProgramKind.CUSTOM_CONTENT, "按客户行业与痛点定制的白皮书", "5000"),
    ("礼品寄送", ProgramKind.GIFT, "节日或关键节点寄送定制礼品", "800"),
    ("高管拜访", ProgramKind.EXECUTIVE_VISIT, "我方高管与客户决策层面对面", "6000"),
    ("精准广告", ProgramKind.ADS, "面向客户公司员工的精准广告投放", "2000"),
]
# Tier 1 gets everything and the most budget; tier 3 the low-touch items.
TIER_MENUS = {
    1: (["闭门会邀请", "定制白皮书", "礼品寄送", "高管拜访", "精准广告"], 10),
    2: (["闭门会邀请", "定制白皮书", "礼品寄送", "精准广告"], 6),
    3: (["礼品寄送", "精准广告"], 5),
}
# What happened to the orders, one per tiered account in turn: (status, days ago asked).
ORDER_PLAN = [
    ("executed", 20),
    ("approved", 6),
    ("requested", 1),
    ("executed", 14),
    ("rejected", 9),
    ("requested", 2),
    ("cancelled", 12),
    ("approved", 4),
    ("requested", 0),
]


def seed_demo_programs(
    session: Session, workspace_id: int, marketer_id: int, seller_ids: list[int]
) -> None:
    """Once per workspace: the menus, then the orders on the accounts scored into a tier."""
    if session.scalar(select(Program.id).where(Program.workspace_id == workspace_id).limit(1)):
        return
    unit_costs = {name: Decimal(cost) for name, _kind, _text, cost in MENU}
    by_tier: dict[int, list[Program]] = {}
    for tier, (names, budget_units) in TIER_MENUS.items():
        for name, kind, description, _cost in MENU:
            if name not in names:
                continue
            program = programs.save_program(
                session,
                workspace_id,
                {
                    "tier": tier,
                    "name": name,
                    "kind": kind,
                    "description": description,
                    "budget": unit_costs[name] * budget_units,
                    "unit_cost": unit_costs[name],
                    "active": True,
                },
            )
            by_tier.setdefault(tier, []).append(program)
    accounts = session.scalars(
        select(Account)
        .where(Account.workspace_id == workspace_id, Account.tier.in_(list(by_tier)))
        .order_by(Account.tier, Account.owner_id.is_(None), Account.id)
    ).all()
    now = utcnow()
    for index, (status, days_ago) in enumerate(ORDER_PLAN):
        if not accounts:
            break
        account = accounts[index % len(accounts)]
        menu = by_tier[account.tier]
        program = _orderable(session, workspace_id, menu, index, account.id)
        if program is None:
            continue
        asked = now - timedelta(days=days_ago, hours=3)
        seller = account.owner_id or (seller_ids[index % len(seller_ids)] if seller_ids else None)
        order = programs.request_program(
            session,
            workspace_id,
            program_id=program.id,
            account_id=account.id,
            user_id=seller,
            note="客户关键人对此很感兴趣" if index % 2 == 0 else None,
            now=asked,
        )
        decided = asked + timedelta(hours=20)
        if status in ("approved", "executed"):
            programs.approve(
                session, order, user_id=marketer_id, over_budget_reason="演示", now=decided
            )
        if status == "executed":
            ran = decided + timedelta(days=3)
            cost = (program.unit_cost * Decimal("0.9")).quantize(Decimal("0.01"))
            programs.execute(
                session, order, user_id=marketer_id, cost=cost, executed_at=ran, now=ran
            )
            title = f"跟进营销计划「{program.name}」"
            follow_up_program(session, order, title=title, created_by=marketer_id, now=ran)
        elif status == "rejected":
            programs.reject(
                session, order, user_id=marketer_id, note="本季度该计划名额已满", now=decided
            )
        elif status == "cancelled":
            programs.cancel(session, order, user_id=seller, note="客户推迟了项目", now=decided)
    session.commit()


def _orderable(
    session: Session, workspace_id: int, menu: list[Program], start: int, account_id: int
) -> Program | None:
    """The menu's next item from `start` that the account has no open order of."""
    for step in range(len(menu)):
        program = menu[(start + step) % len(menu)]
        if programs.open_order(session, workspace_id, program.id, account_id) is None:
            return program
    return None
