"""The admin pages in a real browser: sign in, navigate, a form error, a chart,
language switch, a page refused to a role. Screenshots for a person to look at."""

from playwright.sync_api import expect

from tests.browser.helpers import screenshot, sign_in
from tests.factories import make_channel, make_user
from tests.helpers import OA_CREDS, post_oa, run_jobs
from wechat import simulate


def seed_traffic(app):
    channel_id = make_channel(app, "oa", OA_CREDS)
    client = app.test_client()
    for n, title in enumerate(["CIO", "采购经理", "工程师"]):
        post_oa(client, channel_id, simulate.oa_event(f"o_browser_{n}", "subscribe"))
        post_oa(
            client, channel_id, simulate.oa_event(f"o_browser_{n}", "CLICK", EventKey="PRICING")
        )
        post_oa(
            client, channel_id, simulate.oa_text(f"o_browser_{n}", f"{title}想要报价", 7000 + n)
        )
    run_jobs(app)
    return channel_id


def test_marketer_day(app, live_server, page):
    seed_traffic(app)
    make_user(app, "owner")
    sign_in(page, live_server, "owner@acme.example")

    # The dashboard's charts render, in Chinese by default.
    page.wait_for_selector("body[data-charts-ready='1']")
    expect(page.locator("#follows-chart canvas")).to_have_count(1)
    expect(page.locator("#kinds-chart canvas")).to_have_count(1)
    expect(page.locator("[data-kpi=followers]")).to_have_text("3")
    expect(page.locator("nav.sidebar")).to_contain_text("联系人")
    screenshot(page, "dashboard-zh")

    # Contacts: the list, a search, a detail with the timeline.
    page.click("nav.sidebar >> text=联系人")
    expect(page.locator("main table tbody tr")).to_have_count(3)
    page.fill("input[type=search]", "o_browser_1")
    expect(page.locator("main table tbody tr")).to_have_count(1)
    screenshot(page, "contacts")
    page.locator("main table tbody tr a").first.click()
    expect(page.locator("main")).to_contain_text("PRICING")
    screenshot(page, "contact-detail")

    # A form with a validation error shows the message under the field.
    page.goto(f"{live_server}/admin/channels/new/oa")
    page.fill("input[name=name]", "品牌服务号")
    page.fill("input[name=app_id]", "wx_browser_0001")
    page.fill("input[name=aes_key]", "too-short")
    page.click("main form button.primary")
    expect(page.locator(".field.has-error .error").first).to_be_visible()
    expect(page.locator("main")).to_contain_text("43")
    screenshot(page, "channel-form-error")

    # Switch to English: the same pages, in English.
    page.select_option("header select[name=locale]", "en")
    page.wait_for_load_state()
    expect(page.locator("nav.sidebar")).to_contain_text("Contacts")
    page.goto(f"{live_server}/admin/channels")
    expect(page.locator("main")).to_contain_text(OA_CREDS.app_id)
    screenshot(page, "channels-en")
    page.goto(f"{live_server}/admin/inbox")
    screenshot(page, "inbox-en")


def test_sales_may_not_open_channels(app, live_server, page):
    make_user(app, "sales")
    sign_in(page, live_server, "sales@acme.example")
    expect(page.locator("nav.sidebar")).not_to_contain_text("渠道")
    response = page.goto(f"{live_server}/admin/channels")
    assert response.status == 403
    expect(page.locator("main")).to_be_visible()
    screenshot(page, "sales-refused")
