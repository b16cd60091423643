"""The sales home's queries: accounts ranked by heat, what changed since yesterday, tasks
due, and customers reading today; one user's or the whole workspace's, never another's."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from models import Account
from sales.home import Scope, Window, home
from tests.factories import home_scenario, make_account, make_task, make_user, workspace_id
from tests.helpers import session_of

ZONE = ZoneInfo("Asia/Shanghai")


def local_noon():
    """Today's noon in Shanghai, as UTC: the scenario's "now", far from either midnight."""
    today = datetime.now(ZONE).date()
    return datetime.combine(today, datetime.min.time(), tzinfo=ZONE).replace(hour=12)


def home_of(app, user_id, now):
    with session_of(app) as session:
        return home(session, Scope(workspace_id(app), user_id), Window.at(now, "Asia/Shanghai"))


def test_accounts_rank_by_heat_with_their_reasons(app):
    now = local_noon()
    ids = home_scenario(app, now)
    data = home_of(app, ids["zhangsan"], now)
    ranked = [row.name for row in data.hot]
    # A new MQA (+1 point) outranks a surge, a new CIO and a 10-point rise; the quiet
    # account comes last; 李四's new MQA is not 张三's.
    assert ranked == ["云帆科技", "数智集团", "远景能源", "华信科技", "东方物流"]
    reasons = {
        row.name: [(r.kind, r.ratio, r.delta, r.name, r.role) for r in row.reasons]
        for row in data.hot
    }
    assert reasons["云帆科技"] == [("mqa", None, None, None, None), ("score", None, 1, None, None)]
    assert reasons["数智集团"] == [("surge", 3.2, None, None, None)]
    # The marketer is new too, but only the CIO is on the buying committee.
    assert reasons["远景能源"] == [("committee", None, None, "李总", "cio")]
    assert reasons["华信科技"] == [("score", None, 10, None, None)]
    assert reasons["东方物流"] == []
    assert data.account_count == 5


def test_a_score_rise_ranks_by_its_points_and_never_above_a_new_mqa(app):
    now = local_noon()
    ids = home_scenario(app, now)
    for score, expected in (
        (600, ["云帆科技", "华信科技", "数智集团", "远景能源"]),  # +520: above the surge
        (300, ["云帆科技", "数智集团", "华信科技", "远景能源"]),  # +220: above the new CIO
    ):
        with session_of(app) as session:
            session.get(Account, ids["华信科技"]).score = score
            session.commit()
        assert [row.name for row in home_of(app, ids["zhangsan"], now).hot][:4] == expected


def test_changes_since_yesterday_are_the_users_newest_first(app):
    now = local_noon()
    ids = home_scenario(app, now)
    changes = home_of(app, ids["zhangsan"], now).changes
    assert [(c.kind, c.account) for c in changes] == [
        ("stage", "华信科技"),
        ("person", "远景能源"),
        ("person", "远景能源"),
        ("mqa", "云帆科技"),
        ("routed", "东方物流"),
    ]
    stage = next(c for c in changes if c.kind == "stage")
    assert (stage.from_stage, stage.to_stage) == ("engaged", "meeting")
    assert {c.contact for c in changes if c.kind == "person"} == {"李总", "小陈"}
    routed = next(c for c in changes if c.kind == "routed")
    assert routed.text == "按区域（华东）分配给张三"
    # The stage move three days ago and 李四's account are not in it.
    assert "北辰制造" not in {c.account for c in changes}


def test_tasks_due_are_mine_open_and_due_by_tonight_overdue_first(app):
    now = local_noon()
    ids = home_scenario(app, now)
    tasks = home_of(app, ids["zhangsan"], now).tasks
    assert [item.task.id for item in tasks] == [ids["task:overdue"], ids["task:today"]]
    assert [item.overdue for item in tasks] == [True, False]
    assert (tasks[0].account, tasks[0].contact) == ("华信科技", "王工")


def test_another_workspaces_rows_never_show(app):
    now = local_noon()
    ids = home_scenario(app, now)
    # The same user id cannot own another workspace's rows, but its tasks might name it.
    other_account = make_account(
        app, "别家公司", workspace="other", owner_id=ids["zhangsan"], mqa=True, mqa_since=now
    )
    make_task(
        app,
        "别家的任务",
        assignee_id=ids["zhangsan"],
        due_at=now - timedelta(hours=1),
        workspace="other",
        account_id=other_account,
    )
    data = home_of(app, ids["zhangsan"], now)
    assert "别家公司" not in [row.name for row in data.hot]
    assert "别家的任务" not in [item.task.title for item in data.tasks]
    everyone = home_of(app, None, now)
    assert "别家公司" not in [row.name for row in everyone.hot]
    assert "别家的任务" not in [item.task.title for item in everyone.tasks]


def test_customers_reading_today_with_what_and_how_long(app):
    now = local_noon()
    ids = home_scenario(app, now)
    readers = home_of(app, ids["zhangsan"], now).readers
    assert [(r.name, r.account, r.titles, r.minutes) for r in readers] == [
        ("王工", "华信科技", ["MES 选型指南", "制造业数字化白皮书"], 5.5)
    ]


def test_everyones_home_holds_every_salespersons_accounts_and_tasks(app):
    now = local_noon()
    ids = home_scenario(app, now)
    data = home_of(app, None, now)
    assert {"云帆科技", "北辰制造"} <= {row.name for row in data.hot[:3]}
    assert ids["task:theirs"] in {item.task.id for item in data.tasks}
    assert {r.name for r in data.readers} == {"王工", "赵总"}


def test_a_new_salespersons_home_is_empty(app):
    now = local_noon()
    home_scenario(app, now)
    newcomer = make_user(app, "sales", email="new@acme.example")
    data = home_of(app, newcomer, now)
    assert (data.hot, data.changes, data.tasks, data.readers, data.account_count) == (
        [],
        [],
        [],
        [],
        0,
    )
