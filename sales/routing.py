"""Routing hot accounts to salespeople, and the first-touch SLA.

An account without an owner that reaches MQA or surges, or whose target account gains an
active person, is routed in the drain's transaction: the workspace's rules are tried in
order (territory by region, industry and tier; round-robin or least-loaded among the
eligible users; a user at the rule's capacity is skipped). The new owner gets the account,
a task due at the SLA's deadline and a notification; the account's timeline says why.
Nobody with room: the account stays unassigned and the admins and marketers are told.

`check_sla` (the check_routing_sla job) marks an assignment met when the owner touched the
account in time (a note, content sent from the sidebar, a task done, a stage moved), and
handles a breach by escalating or reassigning once. Everything takes `now`, so a moved
clock is the only clock.
"""

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.jobs import Followups
from core.references import USER, Reference, check_references, declare
from core.transient import is_rerunnable
from core.worktime import WorkingHours, add_working_hours
from crm.crm_webhook import ACCOUNT_ROUTED, tell_crm
from crm.timeline import record_account_event
from models import (
    Account,
    AccountEvent,
    AccountEventKind,
    AssignmentOutcome,
    BreachAction,
    Contact,
    Role,
    RoutingAssignment,
    RoutingMethod,
    RoutingRule,
    RoutingSettings,
    RoutingTrigger,
    Staff,
    StageChange,
    TaskSource,
    TaskStatus,
    User,
    utcnow,
)
from models.routing import OPEN_OUTCOMES
from sales.notify import notify_owner, notify_staff
from sales.tasks import create_task

log = logging.getLogger(__name__)
RULE_REFERENCES = declare("routing_rule", Reference("user_ids", USER))
SETTINGS_REFERENCES = declare("routing_settings", Reference("manager_id", USER))

ALERT_TRIGGERS = {"account_mqa": RoutingTrigger.MQA, "account_surge": RoutingTrigger.SURGE}
TRIGGER_TEXT = {RoutingTrigger.MQA: "达到 MQA", RoutingTrigger.SURGE: "互动激增"}
METHOD_TEXT = {RoutingMethod.ROUND_ROBIN: "轮询", RoutingMethod.LEAST_LOADED: "按负载最少"}
TOUCH_TEXT = {
    AccountEventKind.NOTE: "写了备注",
    AccountEventKind.CHAT_SEND: "在聊天中发送了内容",
    AccountEventKind.TASK_CLOSED: "完成了任务",
    "stage": "推进了阶段",
}
# Told when an account could not be routed.
ROUTING_ADMINS = (Role.OWNER, Role.ADMIN, Role.MARKETER)
# Told of a breach when the workspace names no manager.
ESCALATION_ADMINS = (Role.OWNER, Role.ADMIN)
UNASSIGNED_QUIET_HOURS = 24  # an unroutable account is reported again after this long


# ---- settings and rules --------------------------------------------------------------------


def load_settings(session: Session, workspace_id: int) -> RoutingSettings:
    """The workspace's SLA settings, or the defaults (not added to the session)."""
    row = session.get(RoutingSettings, workspace_id)
    if row is not None:
        return row
    return RoutingSettings(
        workspace_id=workspace_id,
        sla_hours=4.0,
        work_start="09:00",
        work_end="18:00",
        work_days=[1, 2, 3, 4, 5],
        timezone="Asia/Shanghai",
        breach_action=BreachAction.ESCALATE,
        manager_id=None,
    )


def schedule_of(settings: RoutingSettings) -> WorkingHours:
    return WorkingHours(
        start=time.fromisoformat(settings.work_start),
        end=time.fromisoformat(settings.work_end),
        days=tuple(sorted(settings.work_days)),
        timezone=settings.timezone,
    )


def save_settings(session: Session, workspace_id: int, values: Mapping) -> RoutingSettings:
    """Store the SLA settings (the caller validated the values' shape); the manager must be
    a user of the workspace (a ValidationError keyed by field otherwise)."""
    check_references(session, workspace_id, values, SETTINGS_REFERENCES)
    row = session.get(RoutingSettings, workspace_id)
    if row is None:
        row = RoutingSettings(workspace_id=workspace_id)
        session.add(row)
    for name in (
        "sla_hours",
        "work_start",
        "work_end",
        "work_days",
        "timezone",
        "breach_action",
        "manager_id",
    ):
        setattr(row, name, values[name])
    schedule_of(row)  # refuses hours that end before they start
    session.flush()
    return row


def rules_of(session: Session, workspace_id: int, *, enabled_only: bool = False) -> list:
    query = select(RoutingRule).where(RoutingRule.workspace_id == workspace_id)
    if enabled_only:
        query = query.where(RoutingRule.enabled.is_(True))
    return list(session.scalars(query.order_by(RoutingRule.position, RoutingRule.id)))


RULE_FIELDS = (
    "name",
    "enabled",
    "regions",
    "industries",
    "tiers",
    "user_ids",
    "method",
    "capacity",
)


def save_rule(
    session: Session, workspace_id: int, values: Mapping, rule: RoutingRule | None = None
) -> RoutingRule:
    """A new rule (last in order) or changes to one; every eligible user must be the
    workspace's (a ValidationError keyed by field otherwise)."""
    check_references(session, workspace_id, values, RULE_REFERENCES)
    if rule is None:
        last = session.scalar(
            select(func.max(RoutingRule.position)).where(RoutingRule.workspace_id == workspace_id)
        )
        rule = RoutingRule(workspace_id=workspace_id, position=(last or 0) + 1)
        session.add(rule)
    for name in RULE_FIELDS:
        setattr(rule, name, values[name])
    if rule.last_user_id not in rule.user_ids:
        rule.last_user_id = None
    session.flush()
    return rule


def move_rule(session: Session, rule: RoutingRule, step: int) -> bool:
    """Swap the rule with its neighbour up (-1) or down (+1); False at the end."""
    rules = rules_of(session, rule.workspace_id)
    index = rules.index(rule)
    other = index + step
    if not 0 <= other < len(rules):
        return False
    rules[index], rules[other] = rules[other], rules[index]
    for position, each in enumerate(rules, 1):
        each.position = position
    session.flush()
    return True


def _norm(value: str | None) -> str:
    return (value or "").strip().casefold()


def rule_matches(rule: RoutingRule, account: Account) -> bool:
    """The account is in the rule's territory: each of region, industry and tier the rule
    names (an empty list: any) includes the account's."""
    if rule.regions and _norm(account.region) not in {_norm(r) for r in rule.regions}:
        return False
    if rule.industries and _norm(account.industry) not in {_norm(i) for i in rule.industries}:
        return False
    return not rule.tiers or account.tier in rule.tiers


def choose(
    rules: Iterable[RoutingRule],
    account: Account,
    active_users: set[int],
    loads: Mapping[int, int],
    exclude: frozenset[int] = frozenset(),
) -> tuple[RoutingRule, int] | None:
    """The first matching rule with an eligible user who has room, and that user: the next
    after the rule's last one (round-robin) or the least loaded (ties: the rule's order)."""
    for rule in rules:
        if not rule.enabled or not rule_matches(rule, account):
            continue
        order = [u for u in rule.user_ids if u in active_users and u not in exclude]
        room = [u for u in order if rule.capacity is None or loads.get(u, 0) < rule.capacity]
        if not room:
            continue  # everyone at the cap: the next rule
        if rule.method == RoutingMethod.LEAST_LOADED:
            return rule, min(room, key=lambda u: (loads.get(u, 0), order.index(u)))
        ring = list(rule.user_ids)
        start = ring.index(rule.last_user_id) + 1 if rule.last_user_id in ring else 0
        for user_id in ring[start:] + ring[:start]:
            if user_id in room:
                return rule, user_id
    return None


def user_loads(session: Session, workspace_id: int, user_ids: Iterable[int]) -> dict[int, int]:
    """user id -> the open routed accounts they still own."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    return dict(
        session.execute(
            select(RoutingAssignment.user_id, func.count())
            .join(Account, Account.id == RoutingAssignment.account_id)
            .where(
                RoutingAssignment.workspace_id == workspace_id,
                RoutingAssignment.user_id.in_(ids),
                RoutingAssignment.outcome.in_(OPEN_OUTCOMES),
                Account.owner_id == RoutingAssignment.user_id,
            )
            .group_by(RoutingAssignment.user_id)
        ).all()
    )


# ---- routing in the drain ------------------------------------------------------------------


@dataclass
class _Router:
    """What one routing run loads once: rules (locked), settings, users and their loads."""

    session: Session
    workspace_id: int
    now: datetime
    followups: Followups | None
    rules: list = field(default_factory=list)
    settings: RoutingSettings | None = None
    names: dict[int, str] = field(default_factory=dict)
    loads: dict[int, int] = field(default_factory=dict)

    @classmethod
    def load(cls, session, workspace_id, now, followups) -> "_Router":
        router = cls(session, workspace_id, now, followups)
        # Locked in id order: round-robin's place moves once per account, whichever lane.
        router.rules = list(
            session.scalars(
                select(RoutingRule)
                .where(RoutingRule.workspace_id == workspace_id, RoutingRule.enabled.is_(True))
                .order_by(RoutingRule.id)
                .with_for_update()
            )
        )
        router.rules.sort(key=lambda rule: (rule.position, rule.id))
        router.settings = load_settings(session, workspace_id)
        wanted = {user_id for rule in router.rules for user_id in rule.user_ids}
        if wanted:
            router.names = dict(
                session.execute(
                    select(User.id, User.name).where(
                        User.workspace_id == workspace_id,
                        User.active.is_(True),
                        User.id.in_(sorted(wanted)),
                    )
                ).all()
            )
        router.loads = user_loads(session, workspace_id, router.names)
        return router

    def deadline(self) -> datetime:
        return add_working_hours(self.now, self.settings.sla_hours, schedule_of(self.settings))

    def local(self, moment: datetime) -> str:
        return moment.astimezone(ZoneInfo(self.settings.timezone)).strftime("%m-%d %H:%M")

    def assign(
        self,
        account: Account,
        rule: RoutingRule,
        user_id: int,
        *,
        trigger: str,
        reason: str,
        attempt: int = 1,
        contact_id: int | None = None,
        event_kind: AccountEventKind = AccountEventKind.ROUTED,
    ) -> RoutingAssignment:
        """Give the account to the user: owner, assignment, timeline, task, notification."""
        due = self.deadline()
        account.owner_id = user_id
        if rule.method == RoutingMethod.ROUND_ROBIN:
            rule.last_user_id = user_id
        self.loads[user_id] = self.loads.get(user_id, 0) + 1
        assignment = RoutingAssignment(
            workspace_id=self.workspace_id,
            account_id=account.id,
            user_id=user_id,
            rule_id=rule.id,
            trigger=trigger,
            reason=reason[:300],
            attempt=attempt,
            assigned_at=self.now,
            sla_due_at=due,
            outcome=AssignmentOutcome.PENDING,
        )
        self.session.add(assignment)
        self.session.flush()
        record_account_event(
            self.session,
            workspace_id=self.workspace_id,
            account_id=account.id,
            contact_id=contact_id,
            kind=event_kind,
            text=reason,
            data={
                "assignment_id": assignment.id,
                "rule_id": rule.id,
                "owner_id": user_id,
                "trigger": str(trigger),
                "sla_due_at": due.isoformat(),
            },
            now=self.now,
        )
        create_task(
            self.session,
            workspace_id=self.workspace_id,
            title=f"首次跟进「{account.name}」",
            detail=f"{reason}。请在 {self.local(due)} 前首次跟进"
            "（备注、发送内容、完成任务或推进阶段）。",
            due_at=due,
            source=TaskSource.ROUTING,
            account_id=account.id,
            contact_id=contact_id,
            assignee_id=user_id,
            dedupe_key=f"routing:{assignment.id}",
            now=self.now,
        )
        notify_owner(
            self.session,
            account,
            kind="account_routed",
            text=f"「{account.name}」已分配给你：{reason}。请在 {self.local(due)} 前首次跟进。",
            dedupe_key=f"routed:{assignment.id}",
            followups=self.followups,
            summary=f"分配给你，请在 {self.local(due)} 前首次跟进",
        )
        tell_crm(
            self.session,
            self.workspace_id,
            ACCOUNT_ROUTED,
            account.id,
            f"crm:routed:{assignment.id}",
            followups=self.followups,
            now=self.now,
        )
        return assignment

    def unassigned(self, account: Account, trigger: str, why: str, contact_id: int | None):
        """Nobody eligible had room: recorded, and the admins and marketers told (once a
        day per account, however many batches find it)."""
        since = self.now.timestamp() - UNASSIGNED_QUIET_HOURS * 3600
        recent = self.session.scalars(
            select(RoutingAssignment.assigned_at).where(
                RoutingAssignment.workspace_id == self.workspace_id,
                RoutingAssignment.account_id == account.id,
                RoutingAssignment.outcome == AssignmentOutcome.UNASSIGNED,
            )
        ).all()
        if any(at.timestamp() > since for at in recent):
            return None
        reason = f"{why}，未能分配"
        assignment = RoutingAssignment(
            workspace_id=self.workspace_id,
            account_id=account.id,
            user_id=None,
            rule_id=None,
            trigger=trigger,
            reason=reason[:300],
            assigned_at=self.now,
            outcome=AssignmentOutcome.UNASSIGNED,
            decided_at=self.now,
        )
        self.session.add(assignment)
        self.session.flush()
        record_account_event(
            self.session,
            workspace_id=self.workspace_id,
            account_id=account.id,
            contact_id=contact_id,
            kind=AccountEventKind.ROUTED,
            text=reason,
            data={"assignment_id": assignment.id, "trigger": str(trigger), "owner_id": None},
            now=self.now,
        )
        tell_users(
            self.session,
            self.workspace_id,
            role_users(self.session, self.workspace_id, ROUTING_ADMINS),
            kind="routing_unassigned",
            text=f"「{account.name}」{reason}：请调整分配规则或手动指定负责人。",
            dedupe_key=f"routing-unassigned:{assignment.id}",
            followups=self.followups,
        )
        return assignment


class RoutedBatch(Protocol):
    """What routing reads of a drained batch (handlers.registry.Batch)."""

    workspace_id: int
    touched: Mapping[int, set[str]]  # the contacts its events touched
    followups: Followups


def route_accounts(
    session: Session, batch: RoutedBatch, alerts: Iterable, now: datetime | None = None
) -> list[RoutingAssignment]:
    """The drain's call, after scoring: route what the batch's alerts and people ask for."""
    return route_guarded(session, batch.workspace_id, alerts, batch.touched, batch.followups, now)


def route_guarded(
    session: Session,
    workspace_id: int,
    alerts: Iterable,
    touched_contacts: Iterable[int] = (),
    followups: Followups | None = None,
    now: datetime | None = None,
) -> list[RoutingAssignment]:
    """route() in a savepoint of its own, for callers that scored first (the drain, the
    scoring jobs): a routing that fails is logged and costs them none of their scores."""
    try:
        with session.begin_nested():
            return route(session, workspace_id, alerts, touched_contacts, followups, now)
    except Exception as exc:
        if is_rerunnable(exc):
            raise  # the caller's work runs again
        log.exception("routing failed for workspace %s", workspace_id)
        return []


def route(
    session: Session,
    workspace_id: int,
    alerts: Iterable,
    touched_contacts: Iterable[int],
    followups: Followups | None = None,
    now: datetime | None = None,
) -> list[RoutingAssignment]:
    """Route the accounts without an owner that scoring's alerts name (MQA, surge) or that
    are target accounts of the contacts a batch touched; one assignment each. An account
    routed before (by this batch's earlier run, or another lane) has an owner and is left."""
    now = now or utcnow()
    triggers: dict[int, tuple[str, str, int | None]] = {}  # account -> trigger, why, contact
    for alert in alerts:
        trigger = ALERT_TRIGGERS.get(alert.kind)
        if trigger is not None and (
            alert.account_id not in triggers or trigger == RoutingTrigger.MQA
        ):
            triggers[alert.account_id] = (trigger, TRIGGER_TEXT[trigger], None)
    contact_ids = sorted(set(touched_contacts))
    if contact_ids:
        people = session.execute(
            select(Contact.id, Contact.name, Contact.account_id)
            .join(Account, Account.id == Contact.account_id)
            .where(
                Contact.workspace_id == workspace_id,
                Contact.id.in_(contact_ids),
                Contact.merged_into_id.is_(None),
                Account.workspace_id == workspace_id,
                Account.is_target.is_(True),
                Account.owner_id.is_(None),
            )
            .order_by(Contact.id)
        ).all()
        for contact_id, name, account_id in people:
            if account_id not in triggers:
                who = name or f"#{contact_id}"
                triggers[account_id] = (
                    RoutingTrigger.NEW_CONTACT,
                    f"目标账户出现联系人「{who}」",
                    contact_id,
                )
    if not triggers:
        return []
    accounts = list(
        session.scalars(
            select(Account)
            .where(
                Account.workspace_id == workspace_id,
                Account.id.in_(sorted(triggers)),
                Account.owner_id.is_(None),
            )
            .order_by(Account.id)
            .with_for_update(key_share=True)
        )
    )
    if not accounts:
        return []
    router = _Router.load(session, workspace_id, now, followups)
    if not router.rules:
        return []  # routing is off until the workspace has a rule
    made = []
    for account in accounts:
        trigger, why, contact_id = triggers[account.id]
        chosen = choose(router.rules, account, set(router.names), router.loads)
        if chosen is None:
            matched = any(rule_matches(rule, account) for rule in router.rules)
            detail = "规则中的人员均已满额或不可用" if matched else "没有匹配的分配规则"
            row = router.unassigned(account, trigger, f"{why}，{detail}", contact_id)
        else:
            rule, user_id = chosen
            reason = (
                f"{why}，按规则「{rule.name}」{METHOD_TEXT[RoutingMethod(rule.method)]}"
                f"分配给 {router.names[user_id]}"
            )
            row = router.assign(
                account, rule, user_id, trigger=trigger, reason=reason, contact_id=contact_id
            )
        if row is not None:
            made.append(row)
    return made


# ---- telling people ------------------------------------------------------------------------


def role_users(session: Session, workspace_id: int, roles: Iterable[str]) -> list[int]:
    return list(
        session.scalars(
            select(User.id).where(
                User.workspace_id == workspace_id,
                User.active.is_(True),
                User.role.in_([str(role) for role in roles]),
            )
        )
    )


def tell_users(
    session: Session,
    workspace_id: int,
    user_ids: Iterable[int],
    *,
    kind: str,
    text: str,
    dedupe_key: str,
    followups: Followups | None,
) -> int:
    """Record a notification for each of these users on every WeCom corp where they are
    active staff; returns how many."""
    ids = sorted(set(user_ids))
    if not ids:
        return 0
    staff = session.scalars(
        select(Staff)
        .where(Staff.workspace_id == workspace_id, Staff.user_id.in_(ids), Staff.active.is_(True))
        .order_by(Staff.id)
    ).all()
    return sum(
        notify_staff(
            session,
            workspace_id=workspace_id,
            channel_id=member.channel_id,
            staff_userid=member.userid,
            kind=kind,
            text=text,
            dedupe_key=f"{dedupe_key}:{member.channel_id}:{member.userid}",
            followups=followups,
        )
        for member in staff
    )


# ---- the SLA -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Touch:
    at: datetime
    kind: str  # an AccountEventKind, or "stage"


@dataclass
class SlaResult:
    met: int = 0
    escalated: int = 0
    reassigned: int = 0
    released: int = 0  # the owner was changed by a person meanwhile


def first_touches(
    session: Session, workspace_id: int, assignments: list[RoutingAssignment], now: datetime
) -> dict[int, Touch]:
    """assignment id -> the owner's first touch of the account since it was assigned (two
    queries for all of them): a note, content sent from the sidebar, a task closed as done,
    or a stage they moved."""
    if not assignments:
        return {}
    account_ids = sorted({a.account_id for a in assignments})
    since = min(a.assigned_at for a in assignments)
    touches: list[tuple[int, int, datetime, str]] = []  # account, user, when, kind
    events = session.execute(
        select(AccountEvent.account_id, AccountEvent.user_id, AccountEvent.created_at)
        .add_columns(AccountEvent.kind, AccountEvent.data)
        .where(
            AccountEvent.workspace_id == workspace_id,
            AccountEvent.account_id.in_(account_ids),
            AccountEvent.kind.in_(
                [AccountEventKind.NOTE, AccountEventKind.CHAT_SEND, AccountEventKind.TASK_CLOSED]
            ),
            AccountEvent.user_id.is_not(None),
            AccountEvent.created_at >= since,
            AccountEvent.created_at <= now,
        )
    ).all()
    for account_id, user_id, at, kind, data in events:
        if kind == AccountEventKind.TASK_CLOSED and (data or {}).get("status") != TaskStatus.DONE:
            continue  # a skipped task is no touch
        touches.append((account_id, user_id, at, kind))
    stages = session.execute(
        select(StageChange.subject_id, StageChange.user_id, StageChange.changed_at).where(
            StageChange.workspace_id == workspace_id,
            StageChange.subject == "account",
            StageChange.subject_id.in_(account_ids),
            StageChange.user_id.is_not(None),
            StageChange.changed_at >= since,
            StageChange.changed_at <= now,
        )
    ).all()
    touches += [(account_id, user_id, at, "stage") for account_id, user_id, at in stages]
    by_owner: dict[tuple[int, int], list[Touch]] = {}
    for account_id, user_id, at, kind in sorted(touches, key=lambda touch: touch[2]):
        by_owner.setdefault((account_id, user_id), []).append(Touch(at, str(kind)))
    first: dict[int, Touch] = {}
    for assignment in assignments:
        owned = by_owner.get((assignment.account_id, assignment.user_id), [])
        touch = next((touch for touch in owned if touch.at >= assignment.assigned_at), None)
        if touch is not None:
            first[assignment.id] = touch
    return first


def check_sla(
    session: Session,
    workspace_id: int,
    followups: Followups | None = None,
    now: datetime | None = None,
) -> SlaResult:
    """The workspace's pending assignments: met when the owner touched the account by the
    deadline; past it without, escalated or (once) reassigned, as the settings say."""
    now = now or utcnow()
    result = SlaResult()
    # The accounts first, in id order, as the drain's route() locks them before the rules:
    # the other order would deadlock with it.
    session.execute(
        select(Account.id)
        .where(
            Account.workspace_id == workspace_id,
            Account.id.in_(
                select(RoutingAssignment.account_id).where(
                    RoutingAssignment.workspace_id == workspace_id,
                    RoutingAssignment.outcome == AssignmentOutcome.PENDING,
                )
            ),
        )
        .order_by(Account.id)
        .with_for_update(key_share=True)
    )
    pending = list(
        session.scalars(
            select(RoutingAssignment)
            .where(
                RoutingAssignment.workspace_id == workspace_id,
                RoutingAssignment.outcome == AssignmentOutcome.PENDING,
            )
            .order_by(RoutingAssignment.id)
            .with_for_update(skip_locked=True)
        )
    )
    if not pending:
        return result
    touches = first_touches(session, workspace_id, pending, now)
    router: _Router | None = None
    for assignment in pending:
        account = session.get(Account, assignment.account_id)
        touch = touches.get(assignment.id)
        if touch is not None and touch.at <= assignment.sla_due_at:
            _met(session, assignment, touch, now, _user_name(session, assignment.user_id))
            result.met += 1
        elif account.owner_id != assignment.user_id:
            # A person gave the account to someone else: their timeline says so already.
            assignment.outcome, assignment.decided_at = AssignmentOutcome.REASSIGNED, now
            result.released += 1
        elif now >= assignment.sla_due_at:
            if touch is not None:
                assignment.first_touch_at, assignment.first_touch = touch.at, touch.kind
            router = router or _Router.load(session, workspace_id, now, followups)
            if _reassign(router, assignment, account, touch):
                result.reassigned += 1
            else:
                _escalate(router, assignment, account, touch)
                result.escalated += 1
    return result


def _user_name(session: Session, user_id: int | None) -> str:
    user = session.get(User, user_id) if user_id is not None else None
    return user.name if user is not None else "—"


def _met(session, assignment, touch: Touch, now, name: str) -> None:
    assignment.outcome, assignment.decided_at = AssignmentOutcome.MET, now
    assignment.first_touch_at, assignment.first_touch = touch.at, touch.kind
    record_account_event(
        session,
        workspace_id=assignment.workspace_id,
        account_id=assignment.account_id,
        kind=AccountEventKind.SLA_MET,
        text=f"{name} 在时限内完成首次跟进（{TOUCH_TEXT.get(touch.kind, touch.kind)}）",
        data={"assignment_id": assignment.id, "touch": touch.kind, "at": touch.at.isoformat()},
        now=now,
    )


def _reassign(router: _Router, assignment, account: Account, touch: Touch | None) -> bool:
    """Reassign mode, first routing, untouched: to the rule's next eligible user with room."""
    if (
        router.settings.breach_action != BreachAction.REASSIGN
        or assignment.attempt > 1
        or touch is not None
    ):
        return False
    rule = next((rule for rule in router.rules if rule.id == assignment.rule_id), None)
    if rule is None:
        return False
    chosen = choose([rule], account, set(router.names), router.loads, frozenset({account.owner_id}))
    if chosen is None:
        return False
    _rule, user_id = chosen
    before = _user_name(router.session, assignment.user_id)
    assignment.outcome, assignment.decided_at = AssignmentOutcome.REASSIGNED, router.now
    router.loads[assignment.user_id] = max(router.loads.get(assignment.user_id, 1) - 1, 0)
    reason = (
        f"{before} 未在 {router.local(assignment.sla_due_at)} 前首次跟进，"
        f"按规则「{rule.name}」改派给 {router.names[user_id]}"
    )
    router.assign(
        account,
        rule,
        user_id,
        trigger=assignment.trigger,
        reason=reason,
        attempt=assignment.attempt + 1,
        event_kind=AccountEventKind.SLA_REASSIGNED,
    )
    tell_users(
        router.session,
        router.workspace_id,
        [assignment.user_id],
        kind="sla_reassigned",
        text=f"「{account.name}」未在时限内首次跟进，已改派给 {router.names[user_id]}。",
        dedupe_key=f"sla-reassigned:{assignment.id}",
        followups=router.followups,
    )
    return True


def _escalate(router: _Router, assignment, account: Account, touch: Touch | None) -> None:
    session, settings = router.session, router.settings
    assignment.outcome, assignment.decided_at = AssignmentOutcome.ESCALATED, router.now
    owner = _user_name(session, assignment.user_id)
    managers = (
        [settings.manager_id]
        if settings.manager_id is not None
        else role_users(session, router.workspace_id, ESCALATION_ADMINS)
    )
    told = "、".join(_user_name(session, user_id) for user_id in managers) or "管理员"
    late = (
        f"，{router.local(touch.at)} 才跟进"
        if touch is not None
        else f"，截至 {router.local(router.now)} 仍未跟进"
    )
    text = f"{owner} 未在 {router.local(assignment.sla_due_at)} 前首次跟进{late}，已上报 {told}"
    record_account_event(
        session,
        workspace_id=router.workspace_id,
        account_id=account.id,
        kind=AccountEventKind.SLA_ESCALATED,
        text=text,
        data={"assignment_id": assignment.id, "owner_id": assignment.user_id, "told": managers},
        now=router.now,
    )
    tell_users(
        session,
        router.workspace_id,
        managers,
        kind="sla_escalated",
        text=f"首次跟进超时：「{account.name}」（负责人 {owner}）{late}。",
        dedupe_key=f"sla-escalated:{assignment.id}",
        followups=router.followups,
    )
    notify_owner(
        session,
        account,
        kind="sla_escalated",
        text=f"「{account.name}」已超过首次跟进时限，已上报 {told}：请尽快跟进。",
        dedupe_key=f"sla-escalated-owner:{assignment.id}",
        followups=router.followups,
        summary="首次跟进超时，请尽快跟进",
    )


def workspaces_with_pending(session: Session) -> list[int]:
    """The workspaces with assignments waiting for a first touch (the periodic check's)."""
    return list(
        session.scalars(
            select(RoutingAssignment.workspace_id)
            .where(RoutingAssignment.outcome == AssignmentOutcome.PENDING)
            .distinct()
            .order_by(RoutingAssignment.workspace_id)
        )
    )


def recent_assignments(session: Session, workspace_id: int, limit: int) -> list:
    """The newest assignments with their account's name and the user's: (assignment,
    account name, user name or None), newest first."""
    return session.execute(
        select(RoutingAssignment, Account.name, User.name)
        .join(Account, Account.id == RoutingAssignment.account_id)
        .outerjoin(User, User.id == RoutingAssignment.user_id)
        .where(RoutingAssignment.workspace_id == workspace_id)
        .order_by(RoutingAssignment.assigned_at.desc(), RoutingAssignment.id.desc())
        .limit(limit)
    ).all()


def account_timeline(session: Session, workspace_id: int, account_id: int, limit: int) -> list:
    """The account's sales timeline, newest first: (event, the user's name or None)."""
    return session.execute(
        select(AccountEvent, User.name)
        .outerjoin(User, User.id == AccountEvent.user_id)
        .where(AccountEvent.workspace_id == workspace_id, AccountEvent.account_id == account_id)
        .order_by(AccountEvent.created_at.desc(), AccountEvent.id.desc())
        .limit(limit)
    ).all()
