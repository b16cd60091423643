"""The journey action "task for the owner": the account owner's task, its placeholders
filled, decided in the runner's transaction; a rerun of the step creates nothing twice; a
person whose account nobody owns gets an unassigned task."""

from datetime import timedelta

from sqlalchemy import select

from journeys import runner
from journeys.model import validate
from models import Account, Contact, Enrolment, StaffNotification, Step, Task, TaskSource, utcnow
from tests.factories import enrol, make_journey, make_staff, make_user, workspace_id
from tests.helpers import session_of

TASK_JOURNEY = {
    "scope": "contact",
    "reentry": "once",
    "nodes": [
        {"id": "start", "type": "entry", "trigger": {"kind": "manual"}, "next": "task"},
        {
            "id": "task",
            "type": "action",
            "action": {
                "kind": "owner_task",
                "title": "给 {name}（{account}）打电话",
                "due_hours": 8,
                "detail": "{name} 看完了直播",
            },
            "next": "done",
        },
        {"id": "done", "type": "exit"},
    ],
}


def person(app, *, owner_id=None) -> int:
    with session_of(app) as session:
        ws = workspace_id(app)
        account = Account(workspace_id=ws, name="华信科技", normalized_name="华信科技")
        account.owner_id = owner_id
        session.add(account)
        session.flush()
        contact = Contact(workspace_id=ws, name="李总", account_id=account.id)
        session.add(contact)
        session.commit()
        return contact.id


def run(app, at):
    with session_of(app) as session:
        result = runner.run_due(session, workspace_id(app), now=lambda: at)
        session.commit()
        return result


def test_the_owner_gets_a_task_once_and_hears_of_it(app):
    owner = make_user(app, role="sales")
    make_staff(app, "张三", "zhangsan", user_id=owner)
    contact = person(app, owner_id=owner)
    journey = make_journey(app, document=TASK_JOURNEY)
    enrolment = enrol(app, journey, "task", contact_id=contact)
    with session_of(app) as session:
        visit = session.get(Enrolment, enrolment).visit
    at = utcnow()
    run(app, at)
    with session_of(app) as session:
        (task,) = session.scalars(select(Task)).all()
        assert (task.title, task.detail) == ("给 李总（华信科技）打电话", "李总 看完了直播")
        assert (task.source, task.assignee_id, task.contact_id) == (
            TaskSource.JOURNEY,
            owner,
            contact,
        )
        assert task.due_at - at == timedelta(hours=8)
        (note,) = session.scalars(select(StaffNotification)).all()
        assert (note.staff_userid, note.kind, note.account_id) == (
            "zhangsan",
            "task",
            task.account_id,
        )
        # The step again (a rerun after a crash): the task exists, nothing new.
        row = session.get(Enrolment, enrolment)
        row.node_id, row.status, row.next_run_at, row.visit = "task", "active", at, visit
        session.query(Step).filter(Step.enrolment_id == enrolment).delete()
        session.commit()
    run(app, at + timedelta(minutes=1))
    with session_of(app) as session:
        assert len(session.scalars(select(Task)).all()) == 1
        detail = session.scalars(select(Step.detail).where(Step.node_id == "task")).one()
        assert detail["task"] == "created before"


def test_a_person_whose_account_nobody_owns_gets_an_unassigned_task(app):
    contact = person(app)
    journey = make_journey(app, document=TASK_JOURNEY)
    enrol(app, journey, "task", contact_id=contact)
    run(app, utcnow())
    with session_of(app) as session:
        (task,) = session.scalars(select(Task)).all()
        assert task.assignee_id is None
        detail = session.scalars(select(Step.detail).where(Step.node_id == "task")).one()
        assert detail["unassigned"] is True and detail["task_id"] == task.id


def test_the_action_needs_a_title_and_whole_hours():
    document = {**TASK_JOURNEY, "nodes": [dict(node) for node in TASK_JOURNEY["nodes"]]}
    document["nodes"][1] = {
        **document["nodes"][1],
        "action": {"kind": "owner_task", "title": " ", "due_hours": 1.5},
    }
    problems = validate(document)
    assert set(problems) == {"nodes.1.action.title", "nodes.1.action.due_hours"}
