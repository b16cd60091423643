"""Tasks Harpoon gives by itself: one per MQA (a retried batch adds none), unassigned when
nobody owns the account, and a task rule's task when an account enters its stage."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from models import Task, TaskRule, TaskSource, utcnow
from sales.task_rules import save_task_rule, tasks_for_scoring
from scoring.engine import Scorer
from tests.factories import make_user, mqa_committee, workspace_id
from tests.helpers import session_of


def score(app, interaction_ids):
    """A scoring run and its tasks, as the drain does them in its transaction."""
    with session_of(app) as session:
        ws = workspace_id(app)
        result = Scorer.load(session, ws).score_interaction_ids(interaction_ids)
        created = tasks_for_scoring(session, ws, result)
        session.commit()
        return result, created


def tasks(app) -> list[Task]:
    with session_of(app) as session:
        return session.scalars(select(Task).order_by(Task.id)).all()


def test_an_mqa_gives_the_owner_one_task_and_a_retried_batch_none_more(app):
    owner = make_user(app, role="sales")
    account, touches = mqa_committee(app, owner_id=owner)
    result, created = score(app, touches)
    # A committee out of nowhere both reaches MQA and surges: a task for each.
    assert [alert.kind for alert in result.alerts] == ["account_mqa", "account_surge"]
    assert created == 2
    with session_of(app) as session:  # the batch again: the same alerts, nothing new
        assert tasks_for_scoring(session, workspace_id(app), result) == 0
        session.commit()
    task, surge = tasks(app)
    assert surge.source == TaskSource.SURGE
    assert (task.source, task.account_id, task.assignee_id) == (TaskSource.MQA, account, owner)
    assert "华信科技" in task.title and "MQA" in task.detail
    assert timedelta(hours=3, minutes=59) < task.due_at - utcnow() <= timedelta(hours=4)


def test_an_account_nobody_owns_gets_an_unassigned_task(app):
    _account, touches = mqa_committee(app, "无主科技")
    score(app, touches)
    assert [(task.source, task.assignee_id) for task in tasks(app)] == [
        (TaskSource.MQA, None),
        (TaskSource.SURGE, None),
    ]


def test_a_stage_rule_gives_a_task_when_the_account_enters_the_stage(app):
    owner = make_user(app, role="sales")
    with session_of(app) as session:
        ws = workspace_id(app)
        stages = {"target": "目标", "aware": "认知", "mqa": "MQA"}
        save_task_rule(
            session,
            ws,
            {"on": "stage", "value": "mqa", "title": "约 {account} 开会", "due_hours": "24"},
            stages,
        )
        paused = save_task_rule(
            session,
            ws,
            {"on": "stage", "value": "aware", "title": "paused", "due_hours": "1"},
            stages,
        )
        paused.active = False
        session.commit()
    _account, touches = mqa_committee(app, owner_id=owner)
    score(app, touches)
    by_source = {task.source: task for task in tasks(app)}
    assert set(by_source) == {TaskSource.MQA, TaskSource.SURGE, TaskSource.RULE}
    rule_task = by_source[TaskSource.RULE]
    assert (rule_task.title, rule_task.assignee_id) == ("约 华信科技 开会", owner)
    assert timedelta(hours=23, minutes=59) < rule_task.due_at - utcnow() <= timedelta(hours=24)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"on": "stage", "value": "nope", "title": "x", "due_hours": "4"}, "value"),
        ({"on": "tier", "value": "4", "title": "x", "due_hours": "4"}, "value"),
        ({"on": "stage", "value": "mqa", "title": "", "due_hours": "4"}, "title"),
        ({"on": "stage", "value": "mqa", "title": "x", "due_hours": "0"}, "due_hours"),
        ({"on": "size", "value": "mqa", "title": "x", "due_hours": "4"}, "on"),
    ],
)
def test_a_task_rule_names_a_stage_of_the_workspace_or_a_tier(app, values, field):
    from marshmallow import ValidationError

    with session_of(app) as session, pytest.raises(ValidationError) as caught:
        save_task_rule(session, workspace_id(app), values, {"mqa": "MQA"})
    assert field in caught.value.messages
    assert not all_rules(app)


def all_rules(app):
    with session_of(app) as session:
        return session.scalars(select(TaskRule)).all()
