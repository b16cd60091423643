"""The sales home in a real browser, as WeCom's phone webview shows it (375 px) and on a
laptop: a salesperson signs in, lands on it, reads why each account is hot and closes a
task with a note. Assertions are on the scenario's data (the UI is zh_CN)."""

import re

from playwright.sync_api import expect

from models import utcnow
from tests.browser.helpers import screenshot
from tests.factories import PASSWORD, home_scenario

PHONE = {"width": 375, "height": 812}
LAPTOP = {"width": 1366, "height": 900}


def test_a_salespersons_morning_on_the_phone_and_the_laptop(app, live_server, page):
    ids = home_scenario(app, utcnow())
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server}/admin/login")
    page.fill("input[name=email]", "zhangsan@acme.example")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button.primary")
    page.wait_for_url(re.compile(r"/admin/home$"))

    hot = page.locator("#hot li.hot")
    expect(hot.first).to_contain_text("云帆科技")
    expect(hot.first).to_contain_text("新 MQA")
    expect(page.locator("#hot")).to_contain_text("意向激增 ×3.2")
    expect(page.locator("#hot")).to_contain_text("新增决策人：李总（CIO）")
    expect(page.locator("#readers")).to_contain_text("制造业数字化白皮书")
    # Nothing is wider than the phone: no sideways scrolling but the navigation strip's.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    screenshot(page, "home-phone")

    task = page.locator(f"li[data-task='{ids['task:overdue']}']")
    task.locator("input[name=outcome]").fill("已回电，周五上门演示")
    task.locator("button[value=done]").click()
    expect(page.locator(".flash.success")).to_contain_text("已完成：给华信科技王工回电话")
    expect(page.locator(f"li[data-task='{ids['task:overdue']}']")).to_have_count(0)
    screenshot(page, "home-phone-task-done")

    page.set_viewport_size(LAPTOP)
    page.reload()
    expect(page.locator("nav.sidebar li").first).to_contain_text("我的工作台")
    screenshot(page, "home-desktop")
