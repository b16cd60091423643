"""The account and tag pages in a real browser: an account's buying committee filled by what
followers said, tagging a contact by hand, and the Tags page's rules."""

import re

from playwright.sync_api import expect
from sqlalchemy import select

from crm.rule_config import DEFAULT_PROFILE_PATTERN
from models import RuleKind, TagRule, Workspace
from tests.browser.helpers import screenshot, sign_in
from tests.factories import make_channel, make_user
from tests.helpers import OA_CREDS, harpoon_of, post_oa, run_jobs
from wechat import simulate

INTRODUCTIONS = [
    "我是首席信息官，来自上海华信科技有限公司",
    "我是采购经理，来自上海华信科技(中国)有限公司",
    "我是高级工程师，来自上海华信科技",
]


def seed_committee(app):
    channel_id = make_channel(app, "oa", OA_CREDS)
    with harpoon_of(app).db.session() as session:
        workspace_id = session.scalar(select(Workspace.id).where(Workspace.name == "acme"))
        session.add(
            TagRule(
                workspace_id=workspace_id,
                kind=RuleKind.PROFILE,
                name="自我介绍",
                config={"pattern": DEFAULT_PROFILE_PATTERN},
            )
        )
        session.commit()
    client = app.test_client()
    for n, text in enumerate(INTRODUCTIONS):
        post_oa(client, channel_id, simulate.oa_text(f"o_committee_{n}", text, 8100 + n))
    run_jobs(app)


def test_buying_committee_and_manual_tagging(app, live_server, page):
    seed_committee(app)
    make_user(app, "owner")
    sign_in(page, live_server, "owner@acme.example")

    page.click("nav.sidebar >> text=客户")
    rows = page.locator("main table tbody tr")
    expect(rows).to_have_count(1)  # three spellings, one company
    expect(rows.first).to_contain_text("上海华信科技")
    screenshot(page, "accounts")

    rows.first.locator("a").first.click()
    committee = page.locator("#buying-committee")
    for role in ("cio", "procurement", "engineer"):
        expect(committee.locator(f"[data-role={role}].known")).to_have_count(1)
    for role in ("cfo", "ciso"):
        expect(committee.locator(f"[data-role={role}].missing")).to_have_count(1)
    screenshot(page, "account-committee")

    # Tag the CIO by hand from their contact page.
    committee.locator("[data-role=cio] a").first.click()
    page.wait_for_url(re.compile(r"/admin/contacts/\d+$"))
    page.fill("input[name=new_tag]", "重点跟进")
    page.click("#contact-profile button.primary")
    expect(page.locator("#contact-profile")).to_contain_text("重点跟进")
    screenshot(page, "contact-tags")

    page.click("nav.sidebar >> text=标签")
    expect(page.locator("main")).to_contain_text("重点跟进")
    page.goto(f"{live_server}/admin/tags?tab=rules")
    expect(page.locator("main")).to_contain_text("自我介绍")
    screenshot(page, "tags-rules")
