from tests.browser.helpers import screenshot
from tests.factories import PASSWORD, make_user


def test_sign_in_and_see_the_dashboard_chart(app, live_server, page):
    make_user(app, "owner")
    page.goto(f"{live_server}/admin/login")
    page.fill("input[name=email]", "owner@acme.example")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_selector("body[data-charts-ready='1']")
    assert page.locator("#follows-chart canvas").count() == 1
    screenshot(page, "dashboard")
