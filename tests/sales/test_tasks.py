"""Tasks and notes: idempotent creation, closing, and what they leave on the account and in
the person's touchpoints."""

from datetime import timedelta

from sqlalchemy import select

from models import AccountEvent, Interaction, Task, TaskSource, TaskStatus, utcnow
from sales.ownership import owned_contact_ids, owns_contact
from sales.tasks import add_note, close_task, create_task
from tests.factories import (
    add_contact,
    add_relation,
    make_account,
    make_staff,
    make_user,
    workspace_id,
)
from tests.helpers import harpoon_of, run_jobs, session_of


def test_a_task_is_created_once_per_key_and_a_done_task_is_the_persons_interaction(app, oa_channel):
    ws = workspace_id(app)
    owner = make_user(app, role="sales")
    account = make_account(app, "华信")
    contact = add_contact(app, openid="o-li", channel_id=oa_channel, account_id=account)
    due = utcnow() + timedelta(hours=4)
    with session_of(app) as session:
        first = create_task(
            session,
            workspace_id=ws,
            title="给李总打电话",
            due_at=due,
            source=TaskSource.MQA,
            account_id=account,
            contact_id=contact,
            assignee_id=owner,
            dedupe_key="mqa:1",
        )
        again = create_task(session, workspace_id=ws, title="x", due_at=due, dedupe_key="mqa:1")
        session.commit()
        assert first is not None and again is None
        assert close_task(
            session, first, status=TaskStatus.DONE, outcome="约了周五", user_id=owner, lanes=4
        )
        assert not close_task(
            session, first, status=TaskStatus.SKIPPED, outcome=None, user_id=owner, lanes=4
        )
        session.commit()
    harpoon_of(app).queue.drain_requests.mark(ws)
    run_jobs(app)
    with session_of(app) as session:
        task = session.scalars(select(Task)).one()
        assert (task.status, task.outcome) == (TaskStatus.DONE, "约了周五")
        kinds = session.scalars(
            select(AccountEvent.kind).where(AccountEvent.account_id == account)
        ).all()
        assert sorted(kinds) == ["task_closed", "task_created"]
        done = session.scalars(
            select(Interaction).where(Interaction.kind == "sales.task_done")
        ).one()
        assert (done.contact_id, done.properties["task_id"]) == (contact, task.id)


def test_a_note_on_a_person_is_on_their_account_and_in_their_touchpoints(app, oa_channel):
    ws = workspace_id(app)
    author = make_user(app, role="sales")
    account = make_account(app, "华信")
    contact = add_contact(app, openid="o-wang", channel_id=oa_channel, account_id=account)
    with session_of(app) as session:
        add_note(
            session,
            workspace_id=ws,
            text="关注数据安全",
            author_id=author,
            lanes=4,
            account_id=account,
            contact_id=contact,
        )
        session.commit()
    harpoon_of(app).queue.drain_requests.mark(ws)
    run_jobs(app)
    with session_of(app) as session:
        event = session.scalars(select(AccountEvent)).one()
        assert (event.kind, event.text, event.user_id) == ("note", "关注数据安全", author)
        assert session.scalars(
            select(Interaction.contact_id).where(Interaction.kind == "sales.note")
        ).all() == [contact]


def test_a_person_is_a_salespersons_through_their_account_or_as_their_wecom_customer(
    app, wecom_channel
):
    ws = workspace_id(app)
    zhang = make_user(app, role="sales", email="zhang@acme.example")
    li = make_user(app, role="sales", email="li@acme.example")
    make_staff(app, "张三", "zhangsan", user_id=zhang)
    owned = make_account(app, "华信", owner_id=zhang)
    by_account = add_contact(app, account_id=owned)
    by_wecom = add_relation(
        app, wecom_channel, staff_userid="zhangsan", external_userid="wm-1", name="王"
    )
    neither = add_contact(app, account_id=make_account(app, "远景", owner_id=li))
    other = workspace_id(app, "other")
    with session_of(app) as session:
        assert owns_contact(session, ws, zhang, by_account)
        assert owns_contact(session, ws, zhang, by_wecom)
        assert not owns_contact(session, ws, zhang, neither)
        assert owns_contact(session, ws, li, neither)
        assert not owns_contact(session, ws, li, by_wecom)
        everyone = [by_account, by_wecom, neither, None]
        assert owned_contact_ids(session, ws, zhang, everyone) == {by_account, by_wecom}
        assert owned_contact_ids(session, ws, li, everyone) == {neither}
        assert owned_contact_ids(session, ws, li, []) == set()
        assert owned_contact_ids(session, other, zhang, everyone) == set()
