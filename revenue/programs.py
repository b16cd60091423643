"""Tier programs (Terminus' modular menu): per tier a menu of programs with a budget; a
salesperson ticks programs for an account of that tier, marketing approves or rejects,
executes with the cost, or cancels. Every step is written on the account's timeline; an
executed order (status executed, `executed_at` the day it ran) is a touch attribution reads.

Budget per program: committed is what approved orders are expected to cost (the program's
unit cost each), spent is the recorded cost of executed ones, remaining is the budget less
both. Approving past the budget is refused unless the marketer gives a reason, which is
kept in the order's note and on the timeline.

Who may do what (a salesperson only for the accounts they own) is the caller's to check:
revenue does not read sales' ownership.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Select, case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.text import N_
from crm.timeline import record_account_event
from models import (
    Account,
    AccountEvent,
    AccountEventKind,
    Program,
    ProgramKind,
    ProgramOrder,
    ProgramOrderStatus,
    utcnow,
)
from scoring.engine import load_model

MAX_MONEY = Decimal("999999999999.99")
TIERS = (1, 2, 3)
OPEN = (ProgramOrderStatus.REQUESTED, ProgramOrderStatus.APPROVED)
KIND_NAMES = {
    ProgramKind.CUSTOM_CONTENT: "定制内容",
    ProgramKind.EVENT_INVITE: "闭门会邀请",
    ProgramKind.GIFT: "礼品寄送",
    ProgramKind.ADS: "精准广告",
    ProgramKind.EXECUTIVE_VISIT: "高管拜访",
    ProgramKind.OTHER: "其他",
}

NOT_A_TIER = N_("Not a tier of the scoring model.")
NAME_TAKEN = N_("This tier has a program of this name already.")
NOT_A_KIND = N_("Not a kind of program.")
NEGATIVE = N_("At least 0.")
TOO_LARGE = N_("Too large.")
UNKNOWN_PROGRAM = N_("No such program in this workspace.")
UNKNOWN_ACCOUNT = N_("No such account in this workspace.")
INACTIVE = N_("This program is paused: it cannot be ordered.")
NO_TIER = N_("The account has no tier, so it has no menu of programs.")
OTHER_TIER = N_("This program is on another tier's menu than the account's.")
ALREADY_OPEN = N_("This program is already ordered for the account and not yet done.")
NOT_REQUESTED = N_("Only a requested order can be decided.")
NOT_APPROVED = N_("Only an approved order can be executed.")
NOT_OPEN = N_("Only a requested or approved order can be cancelled.")
OVER_BUDGET = N_("Approving it exceeds the program's budget: give a reason to approve anyway.")
REASON_NEEDED = N_("Give a reason.")
COST_NEEDED = N_("Record what it cost.")
FUTURE_DATE = N_("Not a date in the future.")


class ProgramRefused(Exception):
    """A program or an order step refused; `field` names the form input it is about."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


# ---- the menu -------------------------------------------------------------------------------


def model_tiers(session: Session, workspace_id: int) -> list[int]:
    """The tiers a menu may be for: those of the scoring model, 1 to 3."""
    return sorted({rule.tier for rule in load_model(session, workspace_id).tiers} & set(TIERS))


def program_errors(
    session: Session, workspace_id: int, values: dict, existing: Program | None = None
) -> dict[str, list[str]]:
    """Per-field messages for a menu item: a tier of the model, a kind, a name unique in its
    tier, a budget and unit cost of 0 or more."""
    errors: dict[str, list[str]] = {}
    if values["tier"] not in model_tiers(session, workspace_id):
        errors["tier"] = [NOT_A_TIER]
    if values["kind"] not in set(ProgramKind):
        errors["kind"] = [NOT_A_KIND]
    for name in ("budget", "unit_cost"):
        amount = values.get(name)
        if amount is None:
            continue
        if amount < 0:
            errors[name] = [NEGATIVE]
        elif amount > MAX_MONEY:
            errors[name] = [TOO_LARGE]
    taken = session.scalar(
        select(Program.id).where(
            Program.workspace_id == workspace_id,
            Program.tier == values["tier"],
            func.lower(Program.name) == values["name"].lower(),
            Program.id != (existing.id if existing else -1),
        )
    )
    if taken is not None:
        errors["name"] = [NAME_TAKEN]
    return errors


def save_program(
    session: Session, workspace_id: int, values: dict, existing: Program | None = None
) -> Program:
    """Create or update a menu item `program_errors` found nothing wrong with."""
    program = existing or Program(workspace_id=workspace_id)
    for name in ("tier", "name", "kind", "description", "budget", "unit_cost", "active"):
        setattr(program, name, values.get(name))
    if existing is None:
        session.add(program)
    session.flush()
    return program


def program_of(session: Session, workspace_id: int, program_id: int | None) -> Program | None:
    if program_id is None:
        return None
    return session.scalar(
        select(Program).where(Program.workspace_id == workspace_id, Program.id == program_id)
    )


def menu(session: Session, workspace_id: int, tier: int | None = None, *, active_only=False):
    """The menu items, by tier then name."""
    stmt = select(Program).where(Program.workspace_id == workspace_id)
    if tier is not None:
        stmt = stmt.where(Program.tier == tier)
    if active_only:
        stmt = stmt.where(Program.active.is_(True))
    return list(session.scalars(stmt.order_by(Program.tier, Program.name, Program.id)))


@dataclass(frozen=True)
class Budget:
    program: Program
    committed: Decimal  # approved, not yet executed: the unit cost each
    spent: Decimal  # executed: the recorded cost
    requested: int  # orders waiting for a decision

    @property
    def remaining(self) -> Decimal:
        return self.program.budget - self.committed - self.spent

    @property
    def used_share(self) -> float:
        """Committed and spent over the budget, 0 to 1 (1 when there is no budget)."""
        if self.program.budget <= 0:
            return 1.0 if self.committed + self.spent > 0 else 0.0
        return min(1.0, float((self.committed + self.spent) / self.program.budget))


def budgets(session: Session, workspace_id: int, programs: list[Program]) -> list[Budget]:
    """Each program's committed, spent and waiting orders, in one query."""
    if not programs:
        return []
    status = ProgramOrder.status
    rows = session.execute(
        select(
            ProgramOrder.program_id,
            func.count(case((status == ProgramOrderStatus.APPROVED, 1))),
            func.coalesce(
                func.sum(case((status == ProgramOrderStatus.EXECUTED, ProgramOrder.cost))), 0
            ),
            func.count(case((status == ProgramOrderStatus.REQUESTED, 1))),
        )
        .where(
            ProgramOrder.workspace_id == workspace_id,
            ProgramOrder.program_id.in_([program.id for program in programs]),
        )
        .group_by(ProgramOrder.program_id)
    ).all()
    by_program = {
        program_id: (approved, spent, waiting) for program_id, approved, spent, waiting in rows
    }
    out = []
    for program in programs:
        approved, spent, waiting = by_program.get(program.id, (0, 0, 0))
        out.append(
            Budget(
                program,
                committed=(program.unit_cost or Decimal(0)) * approved,
                spent=Decimal(spent).quantize(Decimal("0.01")),
                requested=waiting,
            )
        )
    return out


def budget_of(session: Session, program: Program) -> Budget:
    return budgets(session, program.workspace_id, [program])[0]


# ---- orders -----------------------------------------------------------------------------------


def order_of(session: Session, workspace_id: int, order_id: int | None) -> ProgramOrder | None:
    if order_id is None:
        return None
    return session.scalar(
        select(ProgramOrder).where(
            ProgramOrder.workspace_id == workspace_id, ProgramOrder.id == order_id
        )
    )


def _account(session: Session, workspace_id: int, account_id: int) -> Account | None:
    return session.scalar(
        select(Account).where(Account.workspace_id == workspace_id, Account.id == account_id)
    )


def _requested_by_nonce(
    session: Session, workspace_id: int, account_id: int, user_id: int | None, nonce: str
) -> ProgramOrder | None:
    order_id = session.scalar(
        select(AccountEvent.data["program_order_id"].as_integer())
        .where(
            AccountEvent.workspace_id == workspace_id,
            AccountEvent.account_id == account_id,
            AccountEvent.kind == AccountEventKind.PROGRAM,
            AccountEvent.user_id == user_id,
            AccountEvent.data["nonce"].as_string() == nonce,
        )
        .limit(1)
    )
    return order_of(session, workspace_id, order_id)


def request_program(
    session: Session,
    workspace_id: int,
    *,
    program_id: int,
    account_id: int,
    user_id: int | None,
    note: str | None = None,
    nonce: str | None = None,
    now: datetime | None = None,
) -> ProgramOrder:
    """A salesperson ticks a program for an account of the program's tier. Refused for
    another workspace's program or account, a paused program, an account of another tier
    (or none), and a program already open on the account. `nonce` names one tap: the same
    tap again returns its order and writes nothing."""
    now = now or utcnow()
    account = _account(session, workspace_id, account_id)
    if account is None:
        raise ProgramRefused(UNKNOWN_ACCOUNT, "account_id")
    if nonce:
        done = _requested_by_nonce(session, workspace_id, account.id, user_id, nonce)
        if done is not None:
            return done
    program = program_of(session, workspace_id, program_id)
    if program is None:
        raise ProgramRefused(UNKNOWN_PROGRAM, "program_id")
    if not program.active:
        raise ProgramRefused(INACTIVE, "program_id")
    if account.tier is None:
        raise ProgramRefused(NO_TIER, "program_id")
    if account.tier != program.tier:
        raise ProgramRefused(OTHER_TIER, "program_id")
    if open_order(session, workspace_id, program.id, account.id) is not None:
        raise ProgramRefused(ALREADY_OPEN, "program_id")
    order = ProgramOrder(
        workspace_id=workspace_id,
        program_id=program.id,
        account_id=account.id,
        status=ProgramOrderStatus.REQUESTED,
        note=note[:500] if note else None,
        requested_by=user_id,
        created_at=now,
    )
    try:
        with session.begin_nested():  # a tap at the same moment may have won the index
            session.add(order)
            session.flush()
            text = f"申请营销计划「{program.name}」"
            _record(session, order, program, user_id, text, now, nonce=nonce)
    except IntegrityError:
        done = nonce and _requested_by_nonce(session, workspace_id, account.id, user_id, nonce)
        if done:
            return done
        raise ProgramRefused(ALREADY_OPEN, "program_id") from None
    return order


def count_orders(session: Session, workspace_id: int, status: str) -> int:
    return session.scalar(
        select(func.count(ProgramOrder.id)).where(
            ProgramOrder.workspace_id == workspace_id, ProgramOrder.status == status
        )
    )


def open_order(
    session: Session, workspace_id: int, program_id: int, account_id: int
) -> ProgramOrder | None:
    return session.scalar(
        select(ProgramOrder)
        .where(
            ProgramOrder.workspace_id == workspace_id,
            ProgramOrder.program_id == program_id,
            ProgramOrder.account_id == account_id,
            ProgramOrder.status.in_(OPEN),
        )
        .limit(1)
    )


def approve(
    session: Session,
    order: ProgramOrder,
    *,
    user_id: int | None,
    note: str | None = None,
    over_budget_reason: str | None = None,
    now: datetime | None = None,
) -> ProgramOrder:
    """Marketing will run it. Past the program's remaining budget (by its unit cost) only
    with `over_budget_reason`, kept in the note and on the timeline."""
    now = now or utcnow()
    # Approvals of one program wait for each other: each sums what the last committed.
    program = session.get(Program, order.program_id, with_for_update=True)
    session.refresh(order)
    if order.status != ProgramOrderStatus.REQUESTED:
        raise ProgramRefused(NOT_REQUESTED)
    needed = program.unit_cost or Decimal(0)
    over = budget_of(session, program).remaining < needed
    reason = (over_budget_reason or "").strip()
    if over and not reason:
        raise ProgramRefused(OVER_BUDGET, "over_budget_reason")
    parts = [part for part in (note, f"超预算批准：{reason}" if over else None) if part]
    order.note = "；".join(parts)[:500] if parts else order.note
    order.status = ProgramOrderStatus.APPROVED
    order.decided_by, order.decided_at = user_id, now
    text = f"营销计划「{program.name}」已批准" + (f"（超预算：{reason}）" if over else "")
    _record(session, order, program, user_id, text, now, over_budget=over)
    return order


def reject(
    session: Session, order: ProgramOrder, *, user_id: int | None, note: str, now=None
) -> ProgramOrder:
    now = now or utcnow()
    if order.status != ProgramOrderStatus.REQUESTED:
        raise ProgramRefused(NOT_REQUESTED)
    if not (note or "").strip():
        raise ProgramRefused(REASON_NEEDED, "note")
    program = session.get(Program, order.program_id)
    order.status = ProgramOrderStatus.REJECTED
    order.note = note.strip()[:500]
    order.decided_by, order.decided_at = user_id, now
    _record(
        session, order, program, user_id, f"营销计划「{program.name}」未批准：{order.note}", now
    )
    return order


def execute(
    session: Session,
    order: ProgramOrder,
    *,
    user_id: int | None,
    cost: Decimal | None,
    executed_at: datetime,
    note: str | None = None,
    now: datetime | None = None,
) -> ProgramOrder:
    """Done, with what it cost and when it ran (not in the future): from now on it is a
    touch of the account for attribution."""
    now = now or utcnow()
    if order.status != ProgramOrderStatus.APPROVED:
        raise ProgramRefused(NOT_APPROVED)
    if cost is None:
        raise ProgramRefused(COST_NEEDED, "cost")
    if cost < 0:
        raise ProgramRefused(NEGATIVE, "cost")
    if cost > MAX_MONEY:
        raise ProgramRefused(TOO_LARGE, "cost")
    if executed_at > now:
        raise ProgramRefused(FUTURE_DATE, "executed_on")
    program = session.get(Program, order.program_id)
    order.status = ProgramOrderStatus.EXECUTED
    order.cost, order.executed_at = cost, executed_at
    if note:
        order.note = "；".join(part for part in (order.note, note.strip()) if part)[:500]
    _record(
        session,
        order,
        program,
        user_id,
        f"营销计划「{program.name}」已执行，费用 ¥{cost:,.2f}",
        now,
        cost=str(cost),
    )
    return order


def cancel(
    session: Session, order: ProgramOrder, *, user_id: int | None, note: str | None = None, now=None
) -> ProgramOrder:
    now = now or utcnow()
    if order.status not in OPEN:
        raise ProgramRefused(NOT_OPEN)
    program = session.get(Program, order.program_id)
    order.status = ProgramOrderStatus.CANCELLED
    if note and note.strip():
        order.note = "；".join(part for part in (order.note, note.strip()) if part)[:500]
    _record(session, order, program, user_id, f"营销计划「{program.name}」已取消", now)
    return order


def _record(
    session: Session,
    order: ProgramOrder,
    program: Program,
    user_id: int | None,
    text: str,
    now: datetime,
    **extra,
) -> None:
    data = {
        "program_order_id": order.id,
        "program_id": program.id,
        "status": str(order.status),
        **{key: value for key, value in extra.items() if value is not None},
    }
    record_account_event(
        session,
        workspace_id=order.workspace_id,
        account_id=order.account_id,
        kind=AccountEventKind.PROGRAM,
        user_id=user_id,
        text=text,
        data=data,
        now=now,
    )


# ---- what pages list --------------------------------------------------------------------------


def orders_query(
    workspace_id: int,
    *,
    status: str = "",
    tier: int | None = None,
    program_id: int | None = None,
    owner_id: int | None = None,
    account_id: int | None = None,
) -> Select:
    """Orders with their program and account, newest first: (order, program, account)."""
    stmt = (
        select(ProgramOrder, Program, Account)
        .join(
            Program,
            (Program.id == ProgramOrder.program_id) & (Program.workspace_id == workspace_id),
        )
        .join(
            Account,
            (Account.id == ProgramOrder.account_id) & (Account.workspace_id == workspace_id),
        )
        .where(ProgramOrder.workspace_id == workspace_id)
    )
    if status:
        stmt = stmt.where(ProgramOrder.status == status)
    if tier is not None:
        stmt = stmt.where(Program.tier == tier)
    if program_id is not None:
        stmt = stmt.where(ProgramOrder.program_id == program_id)
    if owner_id is not None:
        stmt = stmt.where(Account.owner_id == owner_id)
    if account_id is not None:
        stmt = stmt.where(ProgramOrder.account_id == account_id)
    return stmt.order_by(ProgramOrder.created_at.desc(), ProgramOrder.id.desc())


@dataclass(frozen=True)
class AccountPrograms:
    """An account's menu (its tier's active programs) and its orders."""

    menu: list[Program]
    orders: list[tuple[ProgramOrder, Program]]
    open_program_ids: set[int]


def account_programs(session: Session, account: Account, orders_shown: int = 50) -> AccountPrograms:
    ws = account.workspace_id
    items = [] if account.tier is None else menu(session, ws, account.tier, active_only=True)
    rows = session.execute(
        orders_query(ws, account_id=account.id)
        .with_only_columns(ProgramOrder, Program)
        .limit(orders_shown)
    ).all()
    open_ids = set(
        session.scalars(
            select(ProgramOrder.program_id).where(
                ProgramOrder.workspace_id == ws,
                ProgramOrder.account_id == account.id,
                ProgramOrder.status.in_(OPEN),
            )
        )
    )
    return AccountPrograms(items, [(order, program) for order, program in rows], open_ids)
