"""Rules, settings and assignments as the routing page shows them, and the account's sales
timeline as the account page shows it."""

from datetime import datetime

from flask_babel import lazy_gettext as _l

from models import AccountEventKind, AssignmentOutcome, RoutingMethod, RoutingRule

METHOD_LABELS = {
    RoutingMethod.ROUND_ROBIN: _l("Round-robin"),
    RoutingMethod.LEAST_LOADED: _l("Least loaded"),
}
OUTCOME_LABELS = {
    AssignmentOutcome.PENDING: _l("Waiting for first touch"),
    AssignmentOutcome.MET: _l("SLA met"),
    AssignmentOutcome.ESCALATED: _l("Escalated"),
    AssignmentOutcome.REASSIGNED: _l("Reassigned"),
    AssignmentOutcome.UNASSIGNED: _l("Unassigned"),
}
OUTCOME_BADGES = {
    AssignmentOutcome.MET: "ok",
    AssignmentOutcome.ESCALATED: "warn",
    AssignmentOutcome.REASSIGNED: "warn",
    AssignmentOutcome.UNASSIGNED: "warn",
}
TRIGGER_LABELS = {
    "mqa": _l("Reached MQA"),
    "surge": _l("Surging"),
    "new_contact": _l("New person of a target account"),
}
EVENT_LABELS = {
    AccountEventKind.ROUTED: _l("Routed"),
    AccountEventKind.OWNER_CHANGED: _l("Owner changed"),
    AccountEventKind.SLA_MET: _l("SLA met"),
    AccountEventKind.SLA_ESCALATED: _l("SLA escalated"),
    AccountEventKind.SLA_REASSIGNED: _l("SLA reassigned"),
    AccountEventKind.TASK_CREATED: _l("Task created"),
    AccountEventKind.TASK_CLOSED: _l("Task closed"),
    AccountEventKind.NOTE: _l("Note"),
    AccountEventKind.CHAT_SEND: _l("Sent in chat"),
    AccountEventKind.TRANSFER: _l("Transfer"),
}
WEEKDAY_SHORT = {
    1: _l("Mon"),
    2: _l("Tue"),
    3: _l("Wed"),
    4: _l("Thu"),
    5: _l("Fri"),
    6: _l("Sat"),
    7: _l("Sun"),
}


def rule_rows(rules: list[RoutingRule], names: dict[int, str], loads: dict[int, int]) -> list:
    """Each rule with its territory and its salespeople ("张三 (3)": open routed accounts)."""
    return [
        {
            "rule": rule,
            "regions": "、".join(rule.regions),
            "industries": "、".join(rule.industries),
            "tiers": "、".join(str(tier) for tier in rule.tiers),
            "people": [
                (names.get(user_id, f"#{user_id}"), loads.get(user_id, 0), user_id in names)
                for user_id in rule.user_ids
            ],
            "method": METHOD_LABELS.get(rule.method, rule.method),
        }
        for rule in rules
    ]


def working_days(days: list[int]) -> str:
    return "、".join(str(WEEKDAY_SHORT[day]) for day in sorted(days))


def assignment_rows(rows: list, now: datetime) -> list[dict]:
    """(assignment, account name, user name) -> what the table shows; a pending one past its
    deadline reads as overdue until the check escalates or reassigns it."""
    shown = []
    for assignment, account_name, user_name in rows:
        overdue = (
            assignment.outcome == AssignmentOutcome.PENDING
            and assignment.sla_due_at is not None
            and assignment.sla_due_at <= now
        )
        shown.append(
            {
                "assignment": assignment,
                "account": account_name,
                "user": user_name,
                "trigger": TRIGGER_LABELS.get(assignment.trigger, assignment.trigger),
                "status": _l("Overdue") if overdue else OUTCOME_LABELS[assignment.outcome],
                "badge": "warn" if overdue else OUTCOME_BADGES.get(assignment.outcome, ""),
            }
        )
    return shown
