"""客户继承 in a real browser: choosing an account's customers, the confirmation, and the
transfer's page with each customer's status and WeCom's refusals in Chinese."""

from pathlib import Path

from playwright.sync_api import expect
from sqlalchemy import select

from models import TransferItem, TransferItemStatus
from sales.transfers import TOO_OFTEN
from tests.browser.helpers import screenshot, sign_in
from tests.factories import add_relation, make_account, make_channel, make_staff, make_user
from tests.helpers import WECOM_CREDS, harpoon_of

SHOTS = Path("/work/notes/shots")


def test_a_transfer_by_account_confirmed_and_followed(app, live_server, page):
    make_user(app, "owner")
    channel_id = make_channel(app, "wecom", WECOM_CREDS, secret="s")
    make_account(app, "华信科技")
    for ext, name, in_account in (
        ("wm_a", "王芳", True),
        ("wm_b", "李娜", True),
        ("wm_c", "赵敏", False),
    ):
        add_relation(
            app,
            channel_id,
            staff_userid="zhangsan",
            external_userid=ext,
            name=name,
            account=in_account,
        )
    zhangsan = make_staff(app, "张三", "zhangsan")
    make_staff(app, "李四", "lisi")
    sign_in(page, live_server, "owner@acme.example")
    page.goto(f"{live_server}/admin/transfers/new/{zhangsan}")
    page.select_option("select[name=takeover]", label="李四 (lisi)")
    page.check("input[name=scope][value=account]")
    page.select_option("select[name=account]", label="华信科技 (2)")
    page.click("form.transfer-form button.primary")
    confirm = page.locator("#transfer-confirm")
    expect(confirm).to_contain_text("2 位客户将转给 李四")
    screenshot(page, "transfers-confirm")
    page.click("#transfer-confirm button.primary")
    expect(page.locator("table.transfer-items tbody tr")).to_have_count(2)
    with harpoon_of(app).db.session() as session:
        for item in session.scalars(select(TransferItem)):
            if item.external_userid == "wm_a":
                item.status, item.errcode = TransferItemStatus.FAILED, TOO_OFTEN
            else:
                item.status = TransferItemStatus.DONE
        session.commit()
    page.reload()
    expect(page.locator("#item-wm_a")).to_contain_text("客户转接过于频繁")
    expect(page.locator("#item-wm_b")).to_contain_text("已接替")
    path = screenshot(page, "transfers-page")
    if SHOTS.is_dir():
        page.screenshot(path=str(SHOTS / "transfers-page.png"), full_page=True)
        page.goto(f"{live_server}/admin/transfers")
        page.screenshot(path=str(SHOTS / "transfers-list.png"), full_page=True)
    assert path.exists()
