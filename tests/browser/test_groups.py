"""A customer group's page in Chinese, filled by the sandbox's events end to end: 张三's
project group, customers of two accounts joining (one by QR code), one leaving, and
their activity."""

import pytest
import requests

from tests.browser.helpers import screenshot, sign_in
from tests.factories import add_customer, add_staff, make_account, make_customer, make_staff
from tests.factories import make_user as make_admin_user
from tests.helpers import WECOM_CREDS, run_jobs
from tests.wecom_platform import connect_corp, corp

pytestmark = pytest.mark.browser


def settle(app, platform):
    platform.state.wait_for_deliveries()
    while run_jobs(app):
        platform.state.wait_for_deliveries()


def groups_call(platform, path, payload=None):
    response = requests.post(
        f"{platform.url}/sandbox/wecom/{WECOM_CREDS.app_id}/groups{path}",
        json=payload or {},
        timeout=5,
    )
    response.raise_for_status()
    return response.json()


def test_a_group_page_in_chinese(wecom_harpoon, platform, page):
    app, base = wecom_harpoon
    channel_id = connect_corp(app, platform, callback_base=base)
    add_staff(platform, "zhangsan", "张三")
    add_staff(platform, "lisi", "李四")
    make_staff(app, "张三", "zhangsan")
    make_staff(app, "李四", "lisi")
    huaxin, yuanjing = make_account(app, "华信科技"), make_account(app, "远景能源")
    people = (
        ("wm_wang", "王芳", huaxin, "信息中心主任", "cio"),
        ("wm_zhao", "赵磊", huaxin, "采购经理", "procurement"),
        ("wm_chen", "陈晨", yuanjing, "首席技术官", "cto"),
        ("wm_liu", "刘洋", yuanjing, "运维工程师", "engineer"),
    )
    for external_userid, name, account_id, title, role in people:
        add_customer(platform.state, corp(platform), external_userid, userid="zhangsan", name=name)
        make_customer(
            app,
            channel_id,
            external_userid,
            name,
            staff_userid="zhangsan",
            account_id=account_id,
            title=title,
            role=role,
        )
    settle(app, platform)
    chat_id = groups_call(
        platform,
        "",
        {
            "owner": "zhangsan",
            "name": "华信 × 远景 数据平台项目群",
            "notice": "周五下午两点线上评审",
        },
    )["chat_id"]
    groups_call(platform, f"/{chat_id}/members", {"userids": ["wm_wang", "wm_zhao", "lisi"]})
    groups_call(
        platform, f"/{chat_id}/members", {"userids": ["wm_chen", "wm_liu"], "join_scene": 3}
    )
    settle(app, platform)
    groups_call(platform, f"/{chat_id}/members/leave", {"userids": ["wm_liu"]})
    settle(app, platform)

    make_admin_user(app, "marketer")
    sign_in(page, base, "marketer@acme.example")
    page.goto(f"{base}/admin/groups")
    assert "华信 × 远景 数据平台项目群" in page.inner_text("table.customer-groups")
    screenshot(page, "groups-list")
    page.click("text=华信 × 远景 数据平台项目群")
    text = page.inner_text("main") if page.locator("main").count() else page.inner_text("body")
    for expected in (
        "华信科技",
        "远景能源",
        "信息中心主任",
        "扫描群二维码入群",
        "已退群",
        "刘洋",
        "群主",
    ):
        assert expected in text, expected
    assert "加入企业微信客户群" in text
    screenshot(page, "groups-group-page")
