"""The chat sidebar in the sandbox's WeCom client: signed in by WeCom's member OAuth, the
page's agentConfig signature checked against the ticket the sandbox issued, the panel of the
open chat, a one-tap send into the chat, and the reader it brings attributed."""

import json
import urllib.parse
import urllib.request

import pytest
from playwright.sync_api import expect

from models import PageView, RefusedSignIn, Staff
from tests.browser.helpers import screenshot
from tests.factories import (
    add_customer,
    add_staff,
    make_account,
    make_content,
    make_customer,
    make_opportunity,
    make_staff,
    make_user,
)
from tests.helpers import WECOM_CREDS, all_of, harpoon_of
from tests.wecom_platform import AGENT_SECRET, connect_corp, corp

CUSTOMER = "wmCustomer001"
CHAT = f"single:zhangsan:{CUSTOMER}"


def post_json(url: str, data: dict) -> dict:
    request = urllib.request.Request(
        url, json.dumps(data).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def sandbox_state(platform) -> dict:
    with urllib.request.urlopen(f"{platform.url}/sandbox/state", timeout=10) as response:
        return json.loads(response.read())[WECOM_CREDS.app_id]


@pytest.fixture
def chat(wecom_harpoon, platform):
    """张三 (sales, mapped) chatting with 李雷 of 华信科技, the sidebar configured as the
    corp's chat toolbar; the client page's URL."""
    app, base = wecom_harpoon
    channel_id = connect_corp(app, platform)
    add_staff(platform, "zhangsan", "张三")
    add_customer(platform.state, corp(platform), CUSTOMER, userid="zhangsan", name="李雷")
    sales = make_user(app, "sales")
    make_staff(app, "张三", "zhangsan", user_id=sales)
    # 张三 owns the account: a salesperson sees the deals of accounts they own.
    account_id = make_account(app, "华信科技", industry="制造", owner_id=sales)
    make_opportunity(app, account_id, name="2027 年度订阅", amount="480000", stage="negotiation")
    make_opportunity(app, account_id, name="数据平台试点", amount="86000", stage="qualify")
    make_customer(
        app,
        channel_id,
        CUSTOMER,
        "李雷",
        staff_userid="zhangsan",
        account_id=account_id,
        title="信息中心主任",
        role="cio",
        seniority="director",
    )
    make_content(
        app,
        title="制造业数字化白皮书",
        topics=["数字化"],
        url=None,
        summary="十个工厂的数字化路线",
        body="第一章：从数据开始。",
    )
    post_json(
        f"{platform.url}/sandbox/wecom/toolbar",
        {"corp_id": WECOM_CREDS.app_id, "url": f"{base}/wecom/{channel_id}/sidebar"},
    )
    query = urllib.parse.urlencode(
        {"corp_id": WECOM_CREDS.app_id, "userid": "zhangsan", "external_userid": CUSTOMER}
    )
    return {"app": app, "base": base, "url": f"{platform.url}/sandbox/wecom/client?{query}"}


def test_a_signature_made_with_a_ticket_wecom_does_not_know_is_refused(chat, platform, phone):
    # Harpoon holds a ticket the platform never issued (or has since replaced): every
    # agentConfig it signs is wrong.
    store = harpoon_of(chat["app"]).wechat.store
    store.set(f"{WECOM_CREDS.app_id}_{AGENT_SECRET[:10]}_agent_jsapi_ticket", "stale", 7000)
    phone.goto(chat["url"])
    sidebar = phone.frame_locator("#toolbar")
    expect(sidebar.locator("#status")).to_contain_text("签名校验未通过", timeout=15000)
    expect(sidebar.locator("#panel")).to_be_hidden()
    expect(sidebar.locator("body")).not_to_contain_text("李雷")
    expect(sidebar.locator("body")).not_to_contain_text("华信科技")


def test_the_right_signature_shows_the_person_and_a_tap_sends_a_tracked_card(
    chat, platform, phone, browser
):
    phone.goto(chat["url"])
    sidebar = phone.frame_locator("#toolbar")
    panel = sidebar.locator("#panel")
    expect(panel).to_contain_text("李雷", timeout=15000)
    expect(panel).to_contain_text("信息中心主任")
    expect(panel).to_contain_text("华信科技")
    expect(panel.locator(".wp-opportunities li")).to_have_text(
        ["2027 年度订阅 商务谈判¥480,000", "数据平台试点 需求确认¥86,000"]
    )
    screenshot(phone, "signin-wecom-client-sidebar")

    sidebar.locator("[data-send-card]").first.click()
    phone.locator(".switch[data-show=chat]").click()
    expect(phone.locator("#messages li.card")).to_contain_text("制造业数字化白皮书", timeout=10000)
    screenshot(phone, "signin-wecom-client-chat")
    [sent] = sandbox_state(platform)["chats"][CHAT]
    assert sent["msgtype"] == "news" and sent["sender"] == "zhangsan"
    link = sent["content"]["link"]
    assert link.startswith(chat["base"]) and "s=" in urllib.parse.urlsplit(link).query

    reader = browser.new_context(viewport={"width": 375, "height": 812}, locale="zh-CN")
    try:
        article = reader.new_page()
        article.goto(link)
        expect(article.locator("body")).to_contain_text("第一章：从数据开始。")
    finally:
        reader.close()
    [staff] = [s for s in all_of(chat["app"], Staff) if s.userid == "zhangsan"]
    views = all_of(chat["app"], PageView)
    assert views and {v.sharer_staff_id for v in views} == {staff.id}


def test_an_unmapped_member_is_told_who_they_are_and_shown_nothing(chat, platform, phone):
    add_staff(platform, "lisi", "李四")
    make_staff(chat["app"], "李四", "lisi")
    phone.goto(chat["url"].replace("userid=zhangsan", "userid=lisi"))
    sidebar = phone.frame_locator("#toolbar")
    expect(sidebar.locator("#unmapped")).to_contain_text("李四", timeout=15000)
    expect(sidebar.locator("#unmapped")).to_contain_text("已通知管理员")
    expect(sidebar.locator("body")).not_to_contain_text("华信科技")
    screenshot(phone, "signin-unmapped")
    [refused] = all_of(chat["app"], RefusedSignIn)
    assert refused.member == "lisi"
