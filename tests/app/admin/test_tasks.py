"""The tasks page: a salesperson's own by default, filters, closing done or skipped with a
note, reassigning (marketers), a task by hand on an account, the task rules, the digest
settings; another workspace's task is a 404."""

import re

from sqlalchemy import select

from models import AuditLog, Interaction, Staff, Task, TaskRule, TaskStatus, User, Workspace
from tests.app.admin.helpers import in_english, post_with_token
from tests.factories import add_contact, make_account, make_staff, make_task, make_user
from tests.helpers import all_of, run_jobs, session_of


def user_id(app, email) -> int:
    with session_of(app) as session:
        return session.scalar(select(User.id).where(User.email == email))


def listed(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<tr id="task-(\d+)"', page)]


def test_a_salesperson_sees_their_own_tasks_by_default(app, signed_in):
    client = signed_in("sales")
    me = user_id(app, "sales@acme.example")
    other = make_user(app, "sales", email="li@acme.example")
    mine = make_task(app, "给李总打电话", assignee_id=me)
    theirs = make_task(app, "theirs", assignee_id=other)
    nobody = make_task(app, "nobody's")
    page = client.get("/admin/tasks")
    assert page.status_code == 200
    assert "任务" in page.text  # the navigation entry, in Chinese
    assert listed(page.text) == [mine]
    assert set(listed(client.get("/admin/tasks?assignee=").text)) == {mine, theirs, nobody}
    assert listed(client.get("/admin/tasks?assignee=none").text) == [nobody]
    assert listed(client.get(f"/admin/tasks?assignee={other}").text) == [theirs]


def test_overdue_and_status_filters(app, signed_in):
    client = signed_in("marketer")
    from datetime import timedelta

    late = make_task(app, "late", due_in=timedelta(hours=-2))
    make_task(app, "later")
    done = make_task(app, "done", status="done")
    assert listed(client.get("/admin/tasks?overdue=1").text) == [late]
    assert listed(client.get("/admin/tasks?status=done").text) == [done]
    assert len(listed(client.get("/admin/tasks?status=all").text)) == 3


def test_closing_done_with_a_note_is_the_persons_interaction_and_skipped_is_not(
    app, signed_in, oa_channel
):
    client = signed_in("sales")
    me = user_id(app, "sales@acme.example")
    account = make_account(app, "华信科技")
    contact = add_contact(app, openid="o-li", channel_id=oa_channel, account_id=account)
    call = make_task(app, "call", assignee_id=me, contact_id=contact, account_id=account)
    mail = make_task(app, "mail", assignee_id=me, contact_id=contact)
    answer = post_with_token(
        client, f"/admin/tasks/{call}/close", {"status": "done", "outcome": "约了周五"}
    )
    assert answer.status_code == 302
    post_with_token(
        client, f"/admin/tasks/{mail}/close", {"status": "skipped", "outcome": "不需要"}
    )
    again = post_with_token(client, f"/admin/tasks/{call}/close", {"status": "skipped"})
    assert again.status_code == 302
    run_jobs(app)
    by_id = {task.id: task for task in all_of(app, Task)}
    assert (by_id[call].status, by_id[call].outcome, by_id[call].closed_by) == (
        TaskStatus.DONE,
        "约了周五",
        me,
    )
    assert (by_id[mail].status, by_id[mail].outcome) == (TaskStatus.SKIPPED, "不需要")
    done = [i for i in all_of(app, Interaction) if i.kind == "sales.task_done"]
    assert [i.properties["task_id"] for i in done] == [call]
    bad = post_with_token(
        client, f"/admin/tasks/{make_task(app, assignee_id=me)}/close", {"status": "open"}
    )
    assert bad.status_code == 302 and all_of(app, Task)[-1].status == TaskStatus.OPEN


def test_a_salesperson_cannot_close_or_reassign_someone_elses_task(app, signed_in):
    client = signed_in("sales")
    other = make_user(app, "sales", email="li@acme.example")
    theirs = make_task(app, "theirs", assignee_id=other)
    assert (
        post_with_token(client, f"/admin/tasks/{theirs}/close", {"status": "done"}).status_code
        == 403
    )
    me = user_id(app, "sales@acme.example")
    assert (
        post_with_token(client, f"/admin/tasks/{theirs}/assign", {"assignee_id": me}).status_code
        == 403
    )
    assert all_of(app, Task)[0].status == TaskStatus.OPEN


def test_a_marketer_reassigns_within_the_workspace(app, signed_in):
    client = signed_in("marketer")
    sales = make_user(app, "sales")
    foreign = make_user(app, "sales", workspace="globex")
    task = make_task(app, "unassigned")
    assert (
        post_with_token(client, f"/admin/tasks/{task}/assign", {"assignee_id": sales}).status_code
        == 302
    )
    post_with_token(client, f"/admin/tasks/{task}/assign", {"assignee_id": foreign})
    (row,) = all_of(app, Task)
    assert row.assignee_id == sales
    assert [a.action for a in all_of(app, AuditLog)] == ["task.assign"]


def test_another_workspaces_task_is_a_404(app, signed_in):
    client = signed_in("marketer")
    foreign = make_task(app, "globex's", workspace="globex")
    assert (
        post_with_token(client, f"/admin/tasks/{foreign}/close", {"status": "done"}).status_code
        == 404
    )
    assert (
        post_with_token(client, f"/admin/tasks/{foreign}/assign", {"assignee_id": ""}).status_code
        == 404
    )
    assert foreign not in listed(client.get("/admin/tasks?assignee=&status=all").text)
    other_account = make_account(app, "Globex", workspace="globex")
    assert (
        post_with_token(
            client, f"/admin/accounts/{other_account}/tasks", {"title": "x", "due_hours": "4"}
        ).status_code
        == 404
    )


def test_a_task_by_hand_on_an_account_page(app, signed_in):
    client = signed_in("sales")
    me = user_id(app, "sales@acme.example")
    other = make_user(app, "sales", email="li@acme.example")
    account = make_account(app, "华信科技")
    page = client.get(f"/admin/accounts/{account}")
    assert f'action="/admin/accounts/{account}/tasks"' in page.text
    answer = post_with_token(
        client,
        f"/admin/accounts/{account}/tasks",
        {"title": "约李总开会", "due_hours": "24", "assignee_id": me, "detail": ""},
    )
    assert answer.status_code == 302
    (task,) = all_of(app, Task)
    assert (task.title, task.account_id, task.assignee_id, task.created_by) == (
        "约李总开会",
        account,
        me,
        me,
    )
    assert "约李总开会" in client.get(f"/admin/accounts/{account}").text
    # A salesperson does not hand tasks to others; a missing title is refused.
    refused = post_with_token(
        client,
        f"/admin/accounts/{account}/tasks",
        {"title": "x", "due_hours": "4", "assignee_id": other},
    )
    assert refused.status_code == 403
    post_with_token(client, f"/admin/accounts/{account}/tasks", {"title": "", "due_hours": "4"})
    assert len(all_of(app, Task)) == 1


def test_marketers_keep_task_rules_and_sales_may_not(app, signed_in):
    client = in_english(signed_in("marketer"))
    assert client.get("/admin/tasks/rules").status_code == 200
    ok = post_with_token(
        client,
        "/admin/tasks/rules",
        {"on": "stage", "value_stage": "mqa", "title": "约 {account} 开会", "due_hours": "24"},
    )
    assert ok.status_code == 302
    bad = post_with_token(
        client,
        "/admin/tasks/rules",
        {"on": "tier", "value_tier": "7", "title": "", "due_hours": "x"},
    )
    assert bad.status_code == 400
    (rule,) = all_of(app, TaskRule)
    assert (rule.on, rule.value, rule.due_hours, rule.active) == ("stage", "mqa", 24, True)
    post_with_token(client, f"/admin/tasks/rules/{rule.id}/toggle")
    assert all_of(app, TaskRule)[0].active is False
    assert signed_in("sales").get("/admin/tasks/rules").status_code == 403


def test_digest_settings_for_the_workspace_and_a_staff_member(app, signed_in):
    client = signed_in("marketer")
    post_with_token(
        client,
        "/admin/notifications/settings",
        {"digest_minutes": "15", "staff_messages_per_day": "6"},
    )
    staff = make_staff(app, "张三", "zhangsan")
    post_with_token(client, f"/admin/staff/{staff}/digest", {"digest_minutes": "30"})
    bad = post_with_token(client, f"/admin/staff/{staff}/digest", {"digest_minutes": "0"})
    assert bad.status_code == 302
    with session_of(app) as session:
        workspace = session.scalar(select(Workspace).where(Workspace.name == "acme"))
        assert (workspace.digest_minutes, workspace.staff_messages_per_day) == (15, 6)
        assert session.get(Staff, staff).digest_minutes == 30
    assert signed_in("sales").post("/admin/notifications/settings").status_code in (400, 403)
