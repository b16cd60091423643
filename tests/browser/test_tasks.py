"""The tasks page in a real browser, in Chinese: a salesperson's open tasks (one overdue),
closed done with a note from the row; at desktop width and at a phone's 375 px."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from models import Task, TaskStatus, User
from tests.browser.helpers import screenshot, sign_in
from tests.factories import make_account, make_task, make_user
from tests.helpers import all_of, session_of

pytestmark = pytest.mark.browser


def seed_tasks(app) -> int:
    make_user(app, "sales")
    with session_of(app) as session:
        me = session.scalar(select(User.id).where(User.email == "sales@acme.example"))
    huaxin, yunfan = make_account(app, "上海华信科技有限公司"), make_account(app, "云帆网络")
    call = make_task(
        app,
        "跟进 MQA 客户「上海华信科技有限公司」",
        assignee_id=me,
        account_id=huaxin,
        source="mqa",
        detail="账户得分 86，3 个角色参与，李总读了《数据安全白皮书》12 分钟。",
    )
    make_task(
        app,
        "约王总参加下周的产品演示",
        assignee_id=me,
        account_id=yunfan,
        source="journey",
        due_in=timedelta(hours=-3),
    )
    make_task(app, "别人的任务", assignee_id=make_user(app, "sales", email="li@acme.example"))
    return call


@pytest.mark.parametrize(("width", "name"), [(1366, "tasks-desktop"), (375, "tasks-phone")])
def test_a_salesperson_closes_a_task_from_their_list(app, live_server, page, width, name):
    call = seed_tasks(app)
    page.set_viewport_size({"width": width, "height": 812 if width == 375 else 768})
    sign_in(page, live_server, "sales@acme.example")
    page.goto(f"{live_server}/admin/tasks")
    rows = page.locator("table.tasks tbody tr")
    expect(rows).to_have_count(2)  # mine, not 李's
    expect(page.locator("tr.overdue")).to_contain_text("已逾期")
    expect(page.locator("nav")).to_contain_text("任务")
    page.locator(f"#task-{call} summary").click()
    screenshot(page, name)
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1
    page.locator(f"#task-{call} textarea[name=outcome]").fill("约了周五见面")
    page.locator(f"#task-{call} button.primary").click()
    expect(page.locator(".flash").first).to_contain_text("任务已完成")
    expect(rows).to_have_count(1)
    (task,) = [t for t in all_of(app, Task) if t.id == call]
    assert (task.status, task.outcome) == (TaskStatus.DONE, "约了周五见面")
