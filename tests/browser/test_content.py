"""The content library in a real browser: add content, make a tracked link and see its
figures, chart and staff share links; a form with its submissions; an API key shown once;
the advocacy leaderboard. Assertions are on data made here (the UI is zh_CN)."""

import re

from playwright.sync_api import expect

from models import Content, TrackedLink
from tests.browser.helpers import screenshot, sign_in
from tests.factories import (
    make_account,
    make_contact,
    make_oa,
    make_staff,
    make_submission,
    make_user,
    tag_ids,
    view,
)
from tests.helpers import all_of


def readers(app, link_id: int, staff_id: int) -> None:
    """Three weeks of views by people of three accounts, some through a staff share."""
    accounts = [make_account(app, name) for name in ("艾克米制造", "环球电子", "华信科技")]
    people = [
        make_contact(app, name, account_id=accounts[n % 3], title=title)
        for n, (name, title) in enumerate(
            [("王总", "CIO"), ("李工", "工程师"), ("赵经理", "采购经理"), ("陈博士", "CTO")]
        )
    ]
    for n in range(24):
        view(
            app,
            link_id,
            contact_id=people[n % 4] if n % 5 else None,
            days_ago=n % 19 + 0.1,
            active_seconds=30 + 11 * n,
            liked=n % 3 == 0,
            sharer_staff_id=staff_id if n % 2 else None,
            new_lead=n in (1, 3),
        )


def test_the_content_library_day(app, live_server, page):
    make_user(app, "owner")
    channel_id = make_oa(app)
    zhang = make_staff(app, "张销售", "zhang")
    make_staff(app, "刘销售", "liu")
    tag_ids(app, "interest:智能制造", "source:2026 展会")
    sign_in(page, live_server, "owner@acme.example")

    # Content: add an article, then a link for the March push.
    page.click("nav.sidebar a[href='/admin/content']")
    page.click("a[href='/admin/content/new']")
    page.fill("input[name=title]", "2026 制造业数字化白皮书")
    page.select_option("select[name=kind]", "download")
    page.fill("input[name=url]", "https://example.com/whitepaper-2026.pdf")
    page.fill("textarea[name=summary]", "十二家工厂的数字化转型经验与投资回报。")
    page.fill("input[name=topics]", "智能制造、MES、AI")
    page.fill("input[name=products]", "云MES")
    page.check("input[name=source][value=body]")
    expect(page.locator("input[name=url]")).to_be_hidden()
    page.check("input[name=source][value=url]")
    expect(page.locator("input[name=url]")).to_be_visible()
    screenshot(page, "content-form")
    page.click("form button.primary")
    page.wait_for_url(re.compile(r"/admin/content/\d+$"))
    (content,) = all_of(app, Content)

    page.select_option("form.link-new select[name=medium]", "push")
    page.fill("form.link-new input[name=label]", "3月推送")
    expect(page.locator("form.link-new select[name=channel_id]")).to_have_value(str(channel_id))
    page.click("form.link-new button.primary")
    page.wait_for_url(re.compile(rf"/admin/content/{content.id}"))
    (link,) = all_of(app, TrackedLink)
    expect(page.locator(f"#link-{link.code} .copy-field input")).to_have_value(
        f"http://127.0.0.1:8000/t/{link.code}"
    )
    expect(page.locator("table.share-links tbody tr")).to_have_count(2)

    readers(app, link.id, zhang)
    page.reload()
    page.wait_for_selector("body[data-charts-ready='1']")
    expect(page.locator("#views-chart canvas")).to_have_count(1)
    expect(page.locator("[data-kpi=views]")).to_have_text("24")
    expect(page.locator("table.top-accounts")).to_contain_text("艾克米制造")
    expect(page.locator("table.recent-readers")).to_contain_text("张销售")
    share = page.locator("table.share-links tr[data-staff=zhang] input")
    assert share.input_value().startswith(f"http://127.0.0.1:8000/t/{link.code}?s=")
    screenshot(page, "content-detail")

    page.click("nav.sidebar a[href='/admin/content']")
    expect(page.locator(f"#content-{content.id}")).to_contain_text("2026 制造业数字化白皮书")
    expect(page.locator(f"#content-{content.id} td.num").first).to_have_text("24")
    screenshot(page, "content-list")

    # A form handing out the white paper, with a link and some submissions.
    page.click("nav.sidebar a[href='/admin/forms']")
    page.click("a[href='/admin/forms/new']")
    page.fill("input[name=title]", "下载白皮书")
    page.fill("textarea[name=intro]", "留下联系方式，白皮书将发送给您。")
    page.select_option("select[name='fields.email']", "optional")
    page.fill("textarea[name=consent_text]", "我同意艾克米按隐私政策联系我。")
    page.select_option("select[name=tag_ids]", label="智能制造")
    page.select_option("select[name=download_content_id]", str(content.id))
    page.check("input[name='follow_up.wechat']")
    page.fill("textarea[name='follow_up.message']", "这是您要的白皮书：")
    screenshot(page, "form-edit")
    page.click("form.form-editor button.primary")
    page.wait_for_url(re.compile(r"/admin/forms/\d+$"))
    page.click("form.link-new button.primary")
    page.wait_for_url(re.compile(r"/admin/forms/\d+"))
    form_link = next(item for item in all_of(app, TrackedLink) if item.form_id)
    for n in range(6):
        view(app, form_link.id, days_ago=n)
    people = [make_contact(app, name) for name in ("孙工", "周总")]
    make_submission(
        app,
        form_link.form_id,
        "b1",
        contact_id=people[0],
        data={"name": "孙工", "company": "华信科技", "phone": "13800138000"},
        consent=True,
        sharer_staff_id=zhang,
        followup_status="sent",
        followup_channel="wechat",
    )
    make_submission(
        app,
        form_link.form_id,
        "b2",
        contact_id=people[1],
        data={"name": "周总", "phone": "13900139000", "email": "zhou@example.com"},
        consent=True,
        followup_status="failed",
        followup_error="outside the 48-hour window and no email",
    )
    page.reload()
    expect(page.locator("table.submissions tbody tr")).to_have_count(2)
    expect(page.locator("[data-kpi=conversion]")).to_have_text("33.3%")
    screenshot(page, "form-detail")

    # An API key, shown once.
    page.click("nav.sidebar a[href='/admin/api-keys']")
    page.fill("form.key-new input[name=name]", "直播平台")
    page.check("form.key-new input[name=require_signature]")
    page.click("form.key-new button.primary")
    key = page.locator(".new-key .copy-field input").first
    expect(key).to_have_value(re.compile(r"^hk_"))
    screenshot(page, "api-keys")
    page.goto(f"{live_server}/admin/api-keys")
    expect(page.locator(".new-key")).to_have_count(0)

    # The leaderboard.
    page.click("nav.sidebar a[href='/admin/advocacy']")
    first = page.locator("table.leaderboard tbody tr").first
    expect(first).to_contain_text("张销售")
    screenshot(page, "advocacy")
