"""Channel QR codes in a real browser: create one from the form, then its page with the
drawn QR image and the chart of scans and follows per day."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from models import QrCode, utcnow
from tests.browser.helpers import screenshot, sign_in
from tests.factories import make_user, tag_ids, touches
from tests.helpers import all_of
from tests.oa_platform import connect_oa

pytestmark = pytest.mark.sandbox


def test_create_a_code_and_read_its_page(app, platform, live_server, page):
    make_user(app, "marketer")
    channel_id = connect_oa(app, platform)
    tag_ids(app, "source:展会", "interest:AI")
    sign_in(page, live_server, "marketer@acme.example")

    page.goto(f"{live_server}/admin/qr-codes")
    page.click(f"a[href='/admin/qr-codes/new/{channel_id}']")
    page.fill("input[name=name]", "2026 上海工博会展台")
    expect(page.locator("input[name=expire_days]")).to_be_visible()
    page.check("input[name=validity][value=permanent]")
    expect(page.locator("input[name=expire_days]")).to_be_hidden()  # permanent: no validity
    page.check("input[name=scene_kind][value=text]")
    page.fill("input[name=scene]", "expo2026")
    page.select_option("select[name=tag_ids]", label="展会")
    page.fill("textarea[name=welcome_reply]", "欢迎关注！展会资料与演示预约请点菜单“预约演示”。")
    screenshot(page, "qr-code-form")
    page.click("form button.primary")
    page.wait_for_url(f"{live_server}/admin/qr-codes/*")

    (code,) = all_of(app, QrCode)
    now = utcnow()
    touches(
        app,
        channel_id,
        [
            (kind, "expo2026", f"p{n}", now - timedelta(days=n % 9, minutes=n))
            for n, kind in enumerate(["wechat.follow", "wechat.scan", "wechat.follow"] * 8)
        ],
    )
    page.reload()
    page.wait_for_selector("body[data-charts-ready='1']")
    expect(page.locator("#scans-chart canvas")).to_have_count(1)
    expect(page.locator("main")).to_contain_text("expo2026")
    expect(page.locator("main")).to_contain_text("欢迎关注！")
    image = page.locator(".qr-image img")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    screenshot(page, "qr-code")

    page.goto(f"{live_server}/admin/qr-codes")
    expect(page.locator(f"#qr-{code.id}")).to_contain_text("2026 上海工博会展台")
    screenshot(page, "qr-codes")
