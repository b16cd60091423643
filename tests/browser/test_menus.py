"""The menus page in a real browser: build a default menu with a sub-menu and a conditional
menu for an industry tag, see a limit refused next to its field, publish through the
confirmation, and preview what a tagged follower gets."""

import re

import pytest
from playwright.sync_api import expect

from models import MenuStatus, MenuVersion
from tests.browser.helpers import screenshot, sign_in
from tests.factories import make_user
from tests.helpers import all_of
from tests.oa_platform import connect_oa
from tests.outreach.menu_platform import follow, oa_tenant, settle, tag, tag_followers
from wechat.sandbox import oa

pytestmark = pytest.mark.sandbox


def field(page, name: str):
    return page.locator(f'[name="{name}"]')


def press(page, op: str):
    page.locator(f'button[name=op][value="{op}"]').click()
    page.wait_for_load_state()


def test_build_publish_and_preview_a_tag_based_menu(app, platform, live_server, page):
    channel_id = connect_oa(app, platform, live_server)
    follow(app, platform, "o_med", "o_plain")
    medical = tag(app, channel_id, "industry", "医美")
    interest = tag(app, channel_id, "interest", "整形")
    tag_followers(app, channel_id, medical, "o_med")
    settle(app, platform)
    make_user(app, "marketer")
    sign_in(page, live_server, "marketer@acme.example")
    page.goto(f"{live_server}/admin/menus")

    # The default menu: a click that replies, then a sub-menu with a web page.
    field(page, "default.0.name").fill("联系销售")
    field(page, "default.0.key").fill("CONTACT_SALES")
    field(page, "default.0.reply").fill("顾问稍后联系您")
    expect(page.locator("#menu-default .byte-count").first).to_have_text("12/16")
    press(page, "add:default")
    field(page, "default.1.name").fill("了解更多")
    field(page, "default.1.kind").select_option("submenu")
    expect(field(page, "default.1.type")).to_be_hidden()
    press(page, "add_sub:default.1")
    field(page, "default.1.sub_button.0.name").fill("产品白皮书")
    field(page, "default.1.sub_button.0.type").select_option("view")
    expect(field(page, "default.1.sub_button.0.key")).to_be_hidden()
    field(page, "default.1.sub_button.0.url").fill("https://harpoon.example/whitepaper")

    # A conditional menu for 医美, starting as a copy of the default.
    press(page, "add_menu")
    field(page, "conditional.0.tag_id").select_option(str(medical))
    field(page, "conditional.0.buttons.0.name").fill("我要整形也要看很多案例")
    field(page, "conditional.0.buttons.0.key").fill("MED_CONSULT")
    field(page, "conditional.0.buttons.0.tag_id").select_option(str(interest))
    field(page, "conditional.0.buttons.0.reply").fill("整形顾问稍后联系您")
    press(page, "publish")
    problem = page.locator("#menu-conditional\\.0 .field.has-error").first
    expect(problem).to_contain_text("最多 16 字节")
    problem.scroll_into_view_if_needed()
    screenshot(page, "menus-field-error")

    field(page, "conditional.0.buttons.0.name").fill("我要整形")
    press(page, "publish")
    page.wait_for_url(re.compile(r"/admin/menus/\d+/publish$"))
    expect(page.locator(".publish-summary .phone")).to_have_count(2)
    expect(page.locator(".publish-summary")).to_contain_text("我要整形")
    screenshot(page, "menus-publish-confirm")
    page.locator("form .primary").click()
    page.wait_for_url(re.compile(r"/admin/menus\?channel=\d+#history$"))
    expect(page.locator(".flash.success")).to_be_visible()
    expect(page.locator("#history tbody tr").first).to_have_attribute("data-status", "published")
    screenshot(page, "menus-published")

    (live,) = [v for v in all_of(app, MenuVersion) if v.status == MenuStatus.PUBLISHED]
    assert live.document["conditional"][0]["tag_id"] == medical
    assert oa.state_of(oa_tenant(platform)).menu.button[1]["sub_button"][0]["type"] == "view"

    # The tagged follower gets the 医美 menu.
    settle(app, platform)
    page.fill("#preview-openid", "o_med")
    page.locator("#follower-preview button[type=submit]").click()
    expect(page.locator("#matched-menu")).to_contain_text("医美")
    expect(page.locator("#follower-preview .phone")).to_contain_text("我要整形")
    page.locator("#follower-preview").scroll_into_view_if_needed()
    screenshot(page, "menus-follower-preview")
