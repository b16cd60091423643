"""A push in a real browser: the form shows the fields of the chosen content, the draft is
sent to a segment through the sandbox, and the report draws its delivery funnel."""

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import screenshot, sign_in
from tests.factories import make_user, tag_segment
from tests.oa_platform import follow, received, settle

pytestmark = pytest.mark.sandbox


def test_a_marketer_sends_a_segmented_push_and_reads_its_report(
    app,
    platform,
    oa,
    live_server,
    page,
):
    ids = follow(app, platform, "o_a", "o_b", "o_c")
    tag_segment(app, [ids["o_a"], ids["o_b"]], name="华东CIO")
    make_user(app, "marketer")
    sign_in(page, live_server, "marketer@acme.example")

    page.goto(f"{live_server}/admin/pushes/new")
    expect(page.locator("input[name=title]")).to_be_hidden()
    page.check("input[name=content_type][value=news]")
    expect(page.locator("input[name=title]")).to_be_visible()
    expect(page.locator("textarea[name=text]")).to_be_hidden()
    page.check("input[name=content_type][value=text]")
    page.fill("input[name=name]", "CIO 闭门会邀请")
    page.select_option("select[name=audience]", label="华东CIO")
    page.fill("textarea[name=text]", "华东区 CIO 闭门会本周五下午两点举行，欢迎报名。")
    page.click("form.push-form button.primary")

    expect(page.locator("[data-audience]")).to_have_attribute("data-audience", "2")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("form[action$='/send'] button")
    settle(app, platform)
    page.reload()
    expect(page.locator("[data-status]").first).to_have_attribute("data-status", "sent")
    expect(page.locator("tr[data-row=delivered] td")).to_have_text("2")
    page.wait_for_function("document.body.dataset.chartsReady === '1'")
    assert page.locator("#funnel-chart canvas").count() == 1
    screenshot(page, "push-report")
    assert [len(received(platform, o)) for o in ("o_a", "o_b", "o_c")] == [1, 1, 0]

    page.goto(f"{live_server}/admin/pushes")
    expect(page.locator("table.pushes tbody tr")).to_have_count(1)
    screenshot(page, "pushes")
