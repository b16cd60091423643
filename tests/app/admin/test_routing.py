"""The routing page: rules (new, edit, order, on/off) with field messages in Chinese, the
SLA settings, the recent assignments with their SLA status; the account's sales timeline."""

import re
from datetime import timedelta

from sqlalchemy import select

from core.jobs import Followups
from models import AuditLog, RoutingRule, RoutingSettings, utcnow
from sales import routing
from scoring.engine import OwnerAlert
from tests.app.admin.helpers import field_errors, post_form, post_with_token
from tests.factories import (
    make_account,
    make_routing_rule,
    make_salesperson,
    make_user,
    workspace_id,
)
from tests.helpers import all_of, session_of


def rules(app) -> list[tuple[str, bool]]:
    with session_of(app) as session:
        return session.execute(
            select(RoutingRule.name, RoutingRule.enabled).order_by(RoutingRule.position)
        ).all()


def settings_rows(app) -> list[RoutingSettings]:
    with session_of(app) as session:
        return list(session.scalars(select(RoutingSettings)))


def test_marketers_and_admins_manage_routing_and_sales_may_not(app, signed_in):
    page = signed_in("marketer").get("/admin/routing")
    assert page.status_code == 200
    assert "线索分配" in page.text and "首次跟进 SLA" in page.text and "还没有规则" in page.text
    assert 'href="/admin/routing"' in page.text  # in the navigation
    seller = signed_in("sales")
    assert seller.get("/admin/routing").status_code == 403
    assert 'href="/admin/routing"' not in seller.get("/admin/").text


def test_a_rule_is_created_with_its_territory_and_people_and_audited(app, signed_in):
    client = signed_in("marketer")
    zhang = make_salesperson(app, "张三", "zhangsan")
    li = make_salesperson(app, "李四", "lisi")
    answer = post_form(
        client,
        "/admin/routing/rules/new",
        {
            "name": "华东制造",
            "regions": "华东, 华中、华东",
            "industries": "制造",
            "tiers": ["1", "2"],
            "user_ids": [str(li), str(zhang)],
            "method": "least_loaded",
            "capacity": "20",
            "enabled": "y",
        },
    )
    assert answer.status_code == 302
    with session_of(app) as session:
        rule = session.scalars(select(RoutingRule)).one()
        assert (rule.regions, rule.industries, rule.tiers) == (["华东", "华中"], ["制造"], [1, 2])
        assert (rule.user_ids, rule.method, rule.capacity) == ([li, zhang], "least_loaded", 20)
    page = client.get("/admin/routing").text
    assert "华东、华中" in page and "李四 (0)" in page and "负载最少优先" in page
    assert [entry.action for entry in all_of(app, AuditLog)] == ["routing_rule.create"]


def test_field_messages_are_in_chinese_and_nothing_is_saved(app, signed_in):
    client = signed_in("marketer")
    answer = post_form(
        client, "/admin/routing/rules/new", {"name": "", "method": "round_robin", "capacity": "0"}
    )
    assert answer.status_code == 400
    assert "请至少选择一名销售。" in answer.text
    assert field_errors(answer.text, "capacity") == ["数值大小必须介于 1 到 10000 之间。"]
    assert field_errors(answer.text, "name")
    assert rules(app) == []


def test_rules_are_edited_reordered_and_turned_off(app, signed_in):
    client = signed_in("admin")
    zhang = make_salesperson(app, "张三", "zhangsan")
    first = make_routing_rule(app, "华东", [zhang])
    second = make_routing_rule(app, "兜底", [zhang])
    post_with_token(client, f"/admin/routing/rules/{second}/move", {"direction": "up"})
    assert rules(app) == [("兜底", True), ("华东", True)]
    post_with_token(client, f"/admin/routing/rules/{second}/toggle")
    assert rules(app) == [("兜底", False), ("华东", True)]
    assert (
        post_with_token(
            client, f"/admin/routing/rules/{first}/move", {"direction": "sideways"}
        ).status_code
        == 400
    )
    edit = client.get(f"/admin/routing/rules/{first}/edit")
    assert 'value="华东"' in edit.text
    answer = post_form(
        client,
        f"/admin/routing/rules/{first}/edit",
        {"name": "华东二组", "user_ids": [str(zhang)], "method": "round_robin", "enabled": "y"},
    )
    assert answer.status_code == 302
    assert rules(app) == [("兜底", False), ("华东二组", True)]


def test_another_workspaces_rule_is_not_found(app, signed_in):
    other = make_user(app, "sales", "other")
    foreign = make_routing_rule(app, "别家", [other], workspace="other")
    client = signed_in("marketer")
    assert client.get(f"/admin/routing/rules/{foreign}/edit").status_code == 404
    assert post_with_token(client, f"/admin/routing/rules/{foreign}/toggle").status_code == 404


def test_sla_settings_are_saved_and_checked(app, signed_in):
    client = signed_in("marketer")
    manager = make_salesperson(app, "王经理", "wangjl", role="admin")
    bad = post_with_token(
        client,
        "/admin/routing/settings",
        {
            "sla_hours": "4",
            "work_start": "18:00",
            "work_end": "09:00",
            "timezone": "Mars/Base",
            "breach_action": "reassign",
        },
    )
    assert bad.status_code == 400
    assert field_errors(bad.text, "work_end") == ["下班时间必须晚于上班时间。"]
    assert field_errors(bad.text, "timezone") == ["请填写时区，如 Asia/Shanghai。"]
    assert "请至少选择一个工作日。" in bad.text
    assert settings_rows(app) == []
    good = post_with_token(
        client,
        "/admin/routing/settings",
        {
            "sla_hours": "2.5",
            "work_start": "08:30",
            "work_end": "17:30",
            "work_days": ["1", "2", "3", "4", "5", "6"],
            "timezone": "Asia/Shanghai",
            "breach_action": "reassign",
            "manager_id": str(manager),
        },
    )
    assert good.status_code == 302
    (row,) = settings_rows(app)
    assert (row.sla_hours, row.work_start, row.work_days) == (2.5, "08:30", [1, 2, 3, 4, 5, 6])
    assert (row.breach_action, row.manager_id) == ("reassign", manager)
    page = client.get("/admin/routing").text
    assert "2.5 个工作小时" in page and "主管：王经理。" in page


def test_assignments_show_their_sla_status_and_the_account_its_timeline(app, signed_in):
    client = signed_in("marketer")
    zhang = make_salesperson(app, "张三", "zhangsan")
    make_routing_rule(app, "华东制造", [zhang])
    account = make_account(app, "华信制造")
    ws = workspace_id(app)
    long_ago = utcnow() - timedelta(days=3)
    with session_of(app) as session:
        alert = OwnerAlert(account, "account_mqa", "MQA", "mqa:1")
        routing.route(session, ws, [alert], [], Followups(), now=long_ago)
        session.commit()
    page = client.get("/admin/routing").text
    assert "华信制造" in page and "达到 MQA，按规则「华东制造」轮询分配给 张三" in page
    assert "已逾期" in page  # past its deadline, not yet checked
    with session_of(app) as session:
        routing.check_sla(session, ws, Followups())
        session.commit()
    assert "已上报" in client.get("/admin/routing").text
    detail = client.get(f"/admin/accounts/{account}").text
    assert "销售动态" in detail
    newest_first = detail.index("超时上报"), detail.index("新任务"), detail.index(">分配<")
    assert sorted(newest_first) == list(newest_first)


def test_whole_sla_hours_show_without_a_decimal(app, signed_in):
    client = signed_in("marketer")
    page = client.get("/admin/routing").text
    assert re.search(r'name="sla_hours"[^>]*value="4"', page), "the default of 4 hours"
    settings = {
        "work_start": "09:00",
        "work_end": "18:00",
        "work_days": ["1", "2", "3", "4", "5"],
        "timezone": "Asia/Shanghai",
        "breach_action": "escalate",
    }
    saved = post_with_token(client, "/admin/routing/settings", {"sla_hours": "1.5", **settings})
    assert saved.status_code == 302
    page = client.get("/admin/routing").text
    assert re.search(r'name="sla_hours"[^>]*value="1.5"', page)
