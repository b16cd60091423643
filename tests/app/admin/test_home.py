"""The sales home page: where a salesperson lands, what it says (in Chinese) and for whom,
and closing a task due from it."""

import re
from datetime import timedelta

from sqlalchemy import select

from models import IdentityKind, Interaction, Task, TaskStatus, utcnow
from tests.app.admin.helpers import csrf_token, sign_in
from tests.factories import add_identity, home_scenario, make_account, make_task, make_user
from tests.helpers import run_jobs, session_of

PAGE = "/admin/home"


def as_user(app, email):
    client = app.test_client()
    response = sign_in(client, email)
    assert response.status_code == 302, response.text
    return client, response


def hot_accounts(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'<li class="hot[^"]*" data-account="(\d+)"', page)]


def task_ids(page: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-task="(\d+)"', page)]


def close(client, task_id, **data):
    token = csrf_token(client.get(PAGE).text)
    return client.post(f"{PAGE}/tasks/{task_id}/close", data={"csrf_token": token, **data})


def test_a_salesperson_lands_on_their_home_and_a_marketer_on_the_dashboard(app):
    home_scenario(app, utcnow())
    make_user(app, "marketer")
    _client, response = as_user(app, "zhangsan@acme.example")
    assert response.headers["Location"] == PAGE
    # The bare index names no page: a salesperson still starts at home.
    client = app.test_client()
    page = client.get("/admin/login?next=/admin/")
    response = client.post(
        "/admin/login?next=/admin/",
        data={
            "email": "zhangsan@acme.example",
            "password": "correct horse battery",
            "csrf_token": csrf_token(page.text),
        },
    )
    assert response.headers["Location"] == PAGE
    # A page named on purpose is where they go.
    client = app.test_client()
    page = client.get("/admin/login?next=/admin/accounts")
    response = client.post(
        "/admin/login?next=/admin/accounts",
        data={
            "email": "zhangsan@acme.example",
            "password": "correct horse battery",
            "csrf_token": csrf_token(page.text),
        },
    )
    assert response.headers["Location"] == "/admin/accounts"
    _client, response = as_user(app, "marketer@acme.example")
    assert response.headers["Location"] == "/admin/"


def test_the_home_says_in_chinese_why_each_account_is_hot(app):
    ids = home_scenario(app, utcnow())
    client, _ = as_user(app, "zhangsan@acme.example")
    page = client.get(PAGE)
    assert page.status_code == 200
    text = page.text
    assert "我的工作台" in text
    assert hot_accounts(text) == [
        ids[n] for n in ("云帆科技", "数智集团", "远景能源", "华信科技", "东方物流")
    ]
    for words in ("新 MQA", "意向激增 ×3.2", "新增决策人：李总（CIO）", "分数 +10"):
        assert words in text, words
    assert "北辰制造" not in text  # 李四's
    # What changed, the tasks due (not tomorrow's, not a closed one, not 李四's), who read.
    assert "华信科技 从「互动中」进入「已约见」" in text
    assert "远景能源 新增联系人：李总（CIO）" in text
    assert "云帆科技 成为 MQA" in text
    assert "东方物流：按区域（华东）分配给张三" in text
    assert ids["task:overdue"] in task_ids(text)
    assert not {ids["task:tomorrow"], ids["task:done"], ids["task:theirs"]} & set(task_ids(text))
    assert "已逾期" in text
    assert "制造业数字化白皮书" in text and "5.5 分钟" in text
    assert "价格说明" not in text  # 赵总 is 李四's


def test_a_new_salespersons_home_says_what_to_do(app):
    home_scenario(app, utcnow())
    make_user(app, "sales", email="new@acme.example")
    client, _ = as_user(app, "new@acme.example")
    text = client.get(PAGE).text
    assert "你还没有负责的客户公司" in text
    assert "今天没有到期的任务" in text
    assert "昨日以来你的客户没有变化" in text
    assert "今天你的客户还没有阅读内容" in text


def test_a_marketer_views_any_salespersons_home_or_everyones(app):
    ids = home_scenario(app, utcnow())
    make_user(app, "marketer")
    client, _ = as_user(app, "marketer@acme.example")
    everyone = client.get(PAGE).text
    assert {ids["云帆科技"], ids["北辰制造"]} <= set(hot_accounts(everyone))
    lisi = client.get(f"{PAGE}?user={ids['lisi']}").text
    assert hot_accounts(lisi) == [ids["北辰制造"]]
    assert task_ids(lisi) == [ids["task:theirs"]]
    assert client.get(f"{PAGE}?user=999999").status_code == 404
    assert client.get(f"{PAGE}?user=abc").status_code == 404
    stranger = make_user(app, "sales", "other", email="stranger@other.example")
    assert client.get(f"{PAGE}?user={stranger}").status_code == 404


def test_a_salesperson_sees_only_their_own_home_whatever_they_ask(app):
    ids = home_scenario(app, utcnow())
    client, _ = as_user(app, "zhangsan@acme.example")
    page = client.get(f"{PAGE}?user={ids['lisi']}").text
    assert ids["北辰制造"] not in hot_accounts(page)
    assert ids["云帆科技"] in hot_accounts(page)
    assert 'name="user"' not in page  # no selector


def test_closing_a_task_due_with_a_note_makes_it_the_persons_touchpoint(app, oa_channel):
    ids = home_scenario(app, utcnow())
    add_identity(app, ids["王工"], IdentityKind.OPENID, "o-wanggong", channel_id=oa_channel)
    client, _ = as_user(app, "zhangsan@acme.example")
    response = close(client, ids["task:overdue"], status="done", outcome=" 约了周五演示 ")
    assert response.status_code == 302
    assert ids["task:overdue"] not in task_ids(client.get(PAGE).text)
    response = close(client, ids["task:today"], status="skipped")
    assert response.status_code == 302
    run_jobs(app)
    with session_of(app) as session:
        done = session.get(Task, ids["task:overdue"])
        skipped = session.get(Task, ids["task:today"])
        assert (done.status, done.outcome, done.closed_by) == (
            TaskStatus.DONE,
            "约了周五演示",
            ids["zhangsan"],
        )
        assert (skipped.status, skipped.outcome) == (TaskStatus.SKIPPED, None)
        touch = session.scalars(
            select(Interaction).where(Interaction.kind == "sales.task_done")
        ).one()
        assert touch.contact_id == ids["王工"]
    # Closing it again changes nothing and says so.
    response = close(client, ids["task:overdue"], status="skipped")
    assert response.status_code == 302
    assert "这个任务已经关闭了" in client.get(PAGE).text


def test_a_task_not_yours_or_of_another_workspace_is_refused(app):
    ids = home_scenario(app, utcnow())
    stranger = make_user(app, "sales", "other", email="stranger@other.example")
    theirs = make_task(
        app,
        "别家的任务",
        assignee_id=stranger,
        due_at=utcnow() - timedelta(hours=1),
        workspace="other",
        account_id=make_account(app, "别家公司", workspace="other"),
    )
    client, _ = as_user(app, "zhangsan@acme.example")
    assert close(client, theirs, status="done").status_code == 404
    assert close(client, ids["task:theirs"], status="done").status_code == 404  # 李四's
    assert close(client, ids["task:overdue"], status="open").status_code == 400
    assert close(client, ids["task:overdue"], status="done", outcome="长" * 1001).status_code == 400
    with session_of(app) as session:
        statuses = {
            session.get(Task, i).status for i in (theirs, ids["task:theirs"], ids["task:overdue"])
        }
        assert statuses == {TaskStatus.OPEN}
    # A marketer closes anyone's task of the workspace, never another's.
    make_user(app, "marketer")
    marketer, _ = as_user(app, "marketer@acme.example")
    assert close(marketer, theirs, status="done").status_code == 404
    assert close(marketer, ids["task:theirs"], status="done").status_code == 302
    # A viewer closes none.
    make_user(app, "viewer")
    viewer, _ = as_user(app, "viewer@acme.example")
    token = csrf_token(viewer.get("/admin/").text)
    response = viewer.post(
        f"{PAGE}/tasks/{ids['task:overdue']}/close", data={"csrf_token": token, "status": "done"}
    )
    assert response.status_code == 403


def test_the_home_is_first_in_the_navigation(app, signed_in):
    text = signed_in("marketer").get("/admin/").text
    links = re.findall(r'<li><a href="(/admin/[^"]*)"', text)
    assert links[0] == PAGE
