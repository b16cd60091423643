"""The routing page in a real browser (zh-CN): a rule made in the form, the SLA settings,
the assignments with their SLA status, and the account's sales timeline."""

from datetime import timedelta

from playwright.sync_api import expect

from core.jobs import Followups
from models import utcnow
from sales import routing
from scoring.engine import OwnerAlert
from tests.browser.helpers import screenshot, sign_in
from tests.factories import (
    make_account,
    make_routing_rule,
    make_salesperson,
    make_user,
    workspace_id,
)
from tests.helpers import session_of


def test_a_marketer_makes_a_rule_and_sees_the_assignments(app, live_server, page):
    zhang = make_salesperson(app, "张三", "zhangsan")
    li = make_salesperson(app, "李四", "lisi")
    make_salesperson(app, "王经理", "wangjl", role="admin")
    make_routing_rule(app, "华南金融", [li], regions=["华南"], industries=["金融"], capacity=10)
    make_routing_rule(app, "华东制造", [zhang, li], regions=["华东"])
    accounts = {
        make_account(app, name, region="华东", industry="制造", is_target=True): days
        for name, days in (("华信制造", 5), ("东方精工", 1), ("远大机械", 0))
    }
    ws = workspace_id(app)
    with session_of(app) as session:
        for account, days in accounts.items():
            alert = OwnerAlert(account, "account_mqa", "MQA", f"mqa:{account}")
            now = utcnow() - timedelta(days=days)
            routing.route(session, ws, [alert], [], Followups(), now=now)
        routing.check_sla(session, ws, Followups())
        session.commit()
    make_user(app, "marketer")
    sign_in(page, live_server, "marketer@acme.example")

    page.click("nav.sidebar a[href='/admin/routing']")
    expect(page.locator("table.routing-rules tbody tr")).to_have_count(2)
    expect(page.locator("table.routing-assignments tbody tr")).to_have_count(3)
    expect(page.locator("table.routing-assignments")).to_contain_text("已上报")
    expect(page.locator("table.routing-assignments")).to_contain_text("待首次跟进")
    expect(page.locator("input[name=sla_hours]")).to_have_value("4")

    page.click("text=新建规则")
    page.fill("input[name=name]", "一级账户")
    page.check("input[name=tiers][value='1']")
    page.check(f"input[name=user_ids][value='{zhang}']")
    page.select_option("select[name=method]", "least_loaded")
    page.fill("input[name=capacity]", "5")
    screenshot(page, "routing-rule-form")
    page.click("form button.primary")
    expect(page.locator("table.routing-rules tbody tr")).to_have_count(3)
    expect(page.locator(".flash, [role=status]").first).to_contain_text("一级账户")
    screenshot(page, "routing-page")

    page.click("table.routing-assignments a >> nth=-1")
    expect(page.locator("#sales-timeline")).to_contain_text("超时上报")
    screenshot(page, "routing-account")
