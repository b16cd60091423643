"""The opportunity list and form in a real browser, in Chinese: a salesperson adds one to
their account from the account page (the form's field messages first), sees it in their
list with the totals, and not another's."""

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from models import User
from tests.browser.helpers import screenshot, sign_in
from tests.factories import make_account, make_opportunity, make_user
from tests.helpers import session_of

pytestmark = pytest.mark.browser


def test_a_salesperson_adds_an_opportunity_to_their_account(app, live_server, page):
    make_user(app, "sales")
    with session_of(app) as session:
        me = session.scalar(select(User.id).where(User.email == "sales@acme.example"))
    mine = make_account(app, "上海华信科技有限公司", owner_id=me)
    theirs = make_account(
        app, "云帆网络", owner_id=make_user(app, "sales", email="li@acme.example")
    )
    make_opportunity(app, theirs, name="别人的商机", amount="900000")
    sign_in(page, live_server, "sales@acme.example")
    page.goto(f"{live_server}/admin/accounts/{mine}")
    page.locator("#account-opportunities a.button").click()
    expect(page.locator("select[name=account_id]")).to_have_value(str(mine))
    page.fill("input[name=amount]", "很多")
    page.click("form.opportunity-form button.primary")
    expect(page.locator(".field.has-error small.error")).to_have_text(
        ["必填。", "不是金额，例如 120000、12万 或 ¥120,000.00。", "必填。"]
    )
    page.fill("input[name=name]", "华信 2027 年度订阅")
    page.fill("input[name=amount]", "48万")
    page.select_option("select[name=stage]", "negotiation")
    page.click("form.opportunity-form button.primary")
    expect(page.locator(".flash.success")).to_contain_text("华信 2027 年度订阅")
    page.goto(f"{live_server}/admin/opportunities")
    rows = page.locator("table.opportunities tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("¥480,000.00")
    expect(page.locator("[data-total=weighted]")).to_have_text("¥288,000.00")
    screenshot(page, "opportunities-sales")
