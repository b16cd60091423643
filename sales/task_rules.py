"""Tasks Harpoon gives salespeople by itself: an MQA or a surge (scoring's owner alerts), and
the workspace's task rules ("when an account enters stage X or tier Y, a task for its owner").

Called after scoring, in the same transaction (the drain's, a rescoring job's): reading the
rules and the accounts is one query each, and each task is one idempotent INSERT (its dedupe
key), so a retried batch adds nothing. The account's owner gets it; an account nobody owns
gets an unassigned task, for whoever picks it up (routing assigns owners; the tasks page
lets a marketer reassign it).
"""

from collections.abc import Iterable
from datetime import datetime, timedelta

from marshmallow import ValidationError, fields, validate, validates_schema
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import forms as form
from core.text import N_
from models import Account, TaskRule, TaskSource, Workspace, utcnow
from sales.tasks import create_task
from scoring.engine import AccountEntry, OwnerAlert, ScoreResult

ALERT_SOURCES = {"account_mqa": TaskSource.MQA, "account_surge": TaskSource.SURGE}
# The task's title; {account} is the account's name.
ALERT_TITLES = {
    "account_mqa": "跟进 MQA 客户「{account}」",
    "account_surge": "「{account}」互动激增，请跟进",
}
RULE_ON = ("stage", "tier")
TIER_VALUES = ("1", "2", "3")
MAX_DUE_HOURS = 24 * 90


def tasks_for_scoring(
    session: Session, workspace_id: int, result: ScoreResult, now: datetime | None = None
) -> int:
    """The tasks a scoring run's alerts and stage/tier entries call for; how many were new."""
    return tasks_for_alerts(session, workspace_id, result.alerts, now) + tasks_for_entries(
        session, workspace_id, result.entered, now
    )


def tasks_for_alerts(
    session: Session,
    workspace_id: int,
    alerts: Iterable[OwnerAlert],
    now: datetime | None = None,
) -> int:
    """One task per MQA / surge alert for the account's owner, due in the workspace's
    alert-task hours; the alert's dedupe key is the task's, so asking again adds none."""
    alerts = [alert for alert in alerts if alert.kind in ALERT_SOURCES]
    if not alerts:
        return 0
    now = now or utcnow()
    hours = session.scalar(select(Workspace.alert_task_hours).where(Workspace.id == workspace_id))
    accounts = _accounts(session, workspace_id, {alert.account_id for alert in alerts})
    created = 0
    for alert in alerts:
        account = accounts.get(alert.account_id)
        if account is None:
            continue
        task = create_task(
            session,
            workspace_id=workspace_id,
            title=ALERT_TITLES[alert.kind].format(account=account.name),
            detail=alert.text,
            due_at=now + timedelta(hours=hours or 4),
            source=ALERT_SOURCES[alert.kind],
            account_id=account.id,
            assignee_id=account.owner_id,
            dedupe_key=f"alert:{alert.dedupe_key}",
            now=now,
        )
        created += task is not None
    return created


def tasks_for_entries(
    session: Session,
    workspace_id: int,
    entries: Iterable[AccountEntry],
    now: datetime | None = None,
) -> int:
    """The active rules' tasks for the accounts that entered their stage or tier; one per
    rule, account and day however often the account goes in and out."""
    entries = list(entries)
    if not entries:
        return 0
    rules = session.scalars(
        select(TaskRule)
        .where(TaskRule.workspace_id == workspace_id, TaskRule.active.is_(True))
        .order_by(TaskRule.id)
    ).all()
    matches = [
        (entry, rule)
        for entry in entries
        for rule in rules
        if rule.on == entry.on and rule.value == entry.value
    ]
    if not matches:
        return 0
    now = now or utcnow()
    accounts = _accounts(session, workspace_id, {entry.account_id for entry, _ in matches})
    created = 0
    for entry, rule in dict.fromkeys(matches):
        account = accounts.get(entry.account_id)
        if account is None:
            continue
        task = create_task(
            session,
            workspace_id=workspace_id,
            title=rule.title.replace("{account}", account.name),
            detail=rule.detail,
            due_at=now + timedelta(hours=rule.due_hours),
            source=TaskSource.RULE,
            account_id=account.id,
            assignee_id=account.owner_id,
            dedupe_key=f"rule:{rule.id}:{account.id}:{now.date().isoformat()}",
            now=now,
        )
        created += task is not None
    return created


def _accounts(session: Session, workspace_id: int, ids: set[int]) -> dict:
    return {
        row.id: row
        for row in session.execute(
            select(Account.id, Account.name, Account.owner_id).where(
                Account.workspace_id == workspace_id, Account.id.in_(ids)
            )
        )
    }


# --- the rules' form ------------------------------------------------------------------


class TaskRuleSchema(form.FormSchema):
    on = form.choice(RULE_ON, N_("A stage or a tier."), required=True)
    value = form.text(N_("Choose a stage or a tier."), high=30, required=True)
    title = form.text(N_("1 to 200 characters."), high=200, required=True)
    detail = fields.String(
        validate=validate.Length(max=1000, error=N_("At most 1000 characters.")),
        load_default="",
    )
    due_hours = form.count(N_("From 1 hour to 90 days."), low=1, high=MAX_DUE_HOURS)

    def __init__(self, *, stages: Iterable[str], **kwargs):
        super().__init__(**kwargs)
        self.stages = tuple(stages)

    @validates_schema(skip_on_field_errors=False)
    def _value_of_its_kind(self, data, **_kwargs):
        on, value = data.get("on"), data.get("value")
        if on == "stage" and value is not None and value not in self.stages:
            raise ValidationError({"value": [N_("Not a stage of this workspace.")]})
        if on == "tier" and value is not None and value not in TIER_VALUES:
            raise ValidationError({"value": [N_("Tier 1, 2 or 3.")]})


def save_task_rule(
    session: Session,
    workspace_id: int,
    data: dict,
    stages: Iterable[str],
    rule: TaskRule | None = None,
) -> TaskRule:
    """A new rule, or this one changed, from the form's data; a ValidationError keyed by field.
    The stage must be one of the workspace's model's stages."""
    loaded = TaskRuleSchema(stages=stages).load(data)
    if rule is None:
        rule = TaskRule(workspace_id=workspace_id)
        session.add(rule)
    rule.on, rule.value, rule.title = loaded["on"], loaded["value"], loaded["title"]
    rule.detail = loaded["detail"] or None
    rule.due_hours = loaded["due_hours"]
    session.flush()
    return rule
