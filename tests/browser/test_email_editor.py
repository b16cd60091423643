"""The email template editor in a real browser (in Chinese): variables inserted at the
cursor, the live preview in a sandboxed frame for the sample person and for a contact, the
error naming an unknown variable; and the unsubscribe page on a phone."""

import pytest
from playwright.sync_api import expect

from models import EmailSuppression, EmailTemplate
from tests.browser.helpers import SCREENSHOTS, screenshot, sign_in
from tests.factories import add_identity, make_contact, make_email_message, make_user
from tests.helpers import all_of

pytestmark = pytest.mark.browser

BODY = (
    '<div style="font-family:sans-serif;max-width:560px">'
    '<h2 style="color:#07c160">2026 华信科技 AI 峰会</h2>'
    "<p>{{ name }}，您好：</p>"
    "<p>诚邀 {{ company }} 的{{ title }}出席 12 月 18 日在上海举办的 AI 峰会，"
    "现场演示最新的智能客服方案。</p>"
    '<p><a href="https://huaxin.example/summit" style="background:#07c160;color:#fff;'
    'padding:8px 16px;border-radius:4px;text-decoration:none">立即报名</a></p>'
    "<p>您的专属顾问："
)


def test_write_a_template_with_its_live_preview(app, live_server, page):
    make_user(app, "marketer")
    contact = make_contact(app, "李娜", company="南京紫金银行", title="CTO")
    add_identity(app, contact, "email", "li.na@zijin.example")
    sign_in(page, live_server, "marketer@acme.example")

    page.goto(f"{live_server}/admin/email/templates")
    expect(page.locator("main")).to_contain_text("还没有邮件模板")
    page.click("a[href='/admin/email/templates/new']")
    page.fill("input[name=name]", "AI 峰会邀请")
    page.fill("input[name=subject]", "")
    page.click("input[name=subject]")
    page.click("button[data-insert='{{ name }}']")
    page.keyboard.type("，诚邀您出席 AI 峰会")
    expect(page.locator("input[name=subject]")).to_have_value("{{ name }}，诚邀您出席 AI 峰会")
    page.fill("textarea[name=body_html]", BODY)
    page.click("textarea[name=body_html]")
    page.keyboard.press("End")
    page.click("button[data-insert='{{ owner }}']")
    page.keyboard.type("</p><script>document.title='x'</script><p>{{ nickname }}</p></div>")

    page.click("#preview-refresh")
    expect(page.locator("#preview")).to_contain_text("未知变量“nickname”")
    page.click("form#template-form button.primary")
    expect(page.locator(".field.has-error")).to_contain_text("未知变量“nickname”")
    assert all_of(app, EmailTemplate) == []

    body = page.input_value("textarea[name=body_html]").replace("<p>{{ nickname }}</p>", "")
    page.fill("textarea[name=body_html]", body)
    page.click("#preview-refresh")
    frame = page.frame_locator("iframe.email-preview")
    expect(frame.locator("h2")).to_have_text("2026 华信科技 AI 峰会")
    expect(frame.locator("body")).to_contain_text("王伟，您好")
    expect(frame.locator("body")).to_contain_text("华信科技 的首席信息官")
    iframe = page.locator("iframe.email-preview")
    assert iframe.get_attribute("sandbox") == ""
    assert page.title() != "x"  # the email's script ran nowhere
    expect(page.locator(".preview-subject")).to_contain_text("王伟，诚邀您出席 AI 峰会")

    page.click("form#template-form button.primary")
    page.wait_for_url(f"{live_server}/admin/email/templates/*")
    [row] = all_of(app, EmailTemplate)
    assert row.subject == "{{ name }}，诚邀您出席 AI 峰会" and "{{ owner }}" in row.body_html

    page.fill("#preview-contact", str(contact))
    page.click("#preview-refresh")
    expect(frame.locator("body")).to_contain_text("李娜，您好")
    expect(frame.locator("body")).to_contain_text("南京紫金银行 的CTO")
    expect(page.locator("#preview")).to_contain_text("按 李娜 的资料显示")
    screenshot(page, "mweb-email-editor")
    page.locator("#preview-card").scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#preview-card").screenshot(path=str(SCREENSHOTS / "mweb-email-preview.png"))

    page.goto(f"{live_server}/admin/email/templates")
    expect(page.locator(f"#email-template-{row.id}")).to_contain_text("AI 峰会邀请")
    screenshot(page, "mweb-email-templates")


def test_the_unsubscribe_page_on_a_phone(app, live_server, browser):
    contact = make_contact(app, "王伟")
    message = make_email_message(app, contact, "wang.wei@huaxin.example")
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True
    )
    phone = context.new_page()
    try:
        phone.goto(f"{live_server}/e/{message.token}/u")
        expect(phone.locator("h1")).to_have_text("退订")
        expect(phone.locator("main")).to_contain_text("w***@huaxin.example")
        screenshot(phone, "mweb-unsubscribe-phone")
        phone.click("button.primary")
        expect(phone.locator("main")).to_contain_text("将不会再收到")
        screenshot(phone, "mweb-unsubscribed-phone")
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing wider than the phone
    finally:
        context.close()
    [row] = all_of(app, EmailSuppression, EmailSuppression.address)
    assert row.address == "wang.wei@huaxin.example"


def test_the_suppressions_and_the_mail_server_pages(app, live_server, page):
    from models import SuppressionReason
    from outreach.suppressions import suppress
    from tests.factories import workspace_id
    from tests.helpers import session_of

    make_user(app, "owner")
    ws = workspace_id(app)
    with session_of(app) as session:
        suppress(session, ws, "wang.wei@huaxin.example", SuppressionReason.UNSUBSCRIBED)
        suppress(session, ws, "li.na@zijin.example", SuppressionReason.BOUNCED, detail="550 5.1.1")
        suppress(session, ws, "zhao@jinling.example", SuppressionReason.COMPLAINED)
        session.commit()
    sign_in(page, live_server, "owner@acme.example")
    page.goto(f"{live_server}/admin/email/suppressions")
    expect(page.locator("table.email-suppressions tbody tr")).to_have_count(3)
    expect(page.locator("main")).to_contain_text("标记为垃圾邮件")
    screenshot(page, "mweb-email-suppressions")
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("tr", has_text="wang.wei").locator("button").click()
    expect(page.locator(".flash")).to_contain_text("已恢复向 wang.wei@huaxin.example 发送邮件")
    expect(page.locator("table.email-suppressions tbody tr")).to_have_count(2)

    page.goto(f"{live_server}/admin/email/settings")
    page.fill("input[name=host]", "smtp.exmail.qq.com")
    page.check("input[name=security][value=smtps]")
    page.fill("input[name=port]", "465")
    page.fill("input[name=username]", "marketing@huaxin.example")
    page.fill("input[name=password]", "p@ss:w0rd")
    page.fill("input[name=mail_from]", "华信科技 <marketing@huaxin.example>")
    page.click("form button.primary")
    expect(page.locator(".flash")).to_contain_text("发信服务器已保存")
    assert page.input_value("input[name=password]") == ""
    expect(page.locator("main")).to_contain_text("已保存密码，不会再显示")
    expect(page.locator("main")).to_contain_text("例如 华信科技 <marketing@example.com>。")
    screenshot(page, "mweb-email-settings")
