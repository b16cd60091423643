"""Scoring in a real browser: demo-like accounts scored day by day for two months, the
accounts list by score, an account's trend chart and contributions, a stage moved with a
quick button, and the dashboard's funnel and ABM charts. Screenshots to look at."""

import random
import re
from datetime import timedelta

from playwright.sync_api import expect

from crm.channels import workspace_named
from models import Account, Contact, Interaction, utcnow
from scoring.engine import Scorer
from tests.browser.helpers import screenshot, sign_in
from tests.factories import make_user
from tests.helpers import harpoon_of

DAYS = 60
# name, target, industry, acv, committee (role, seniority, name), touches a week
ACCOUNTS = [
    (
        "上海华信科技",
        True,
        "制造",
        800_000,
        [
            ("cio", "c_level", "张伟"),
            ("cfo", "vp", "李娜"),
            ("procurement", "manager", "王强"),
            ("engineer", "staff", "赵磊"),
        ],
        6,
    ),
    (
        "北京远航金融",
        True,
        "金融",
        300_000,
        [("cto", "vp", "陈静"), ("engineer", "staff", "刘洋")],
        3,
    ),
    ("深圳星云医疗", True, "医疗", 200_000, [("it_manager", "director", "周敏")], 1),
    ("杭州云帆物流", False, "物流", None, [("engineer", "staff", "吴昊")], 2),
    ("广州明德教育", True, "教育", 100_000, [("other", "staff", "郑洁")], 0),
    ("成都天府能源", True, "能源", 600_000, [], 0),
]
KINDS = [
    ("wechat.menu_click", {"key": "PRICING"}, 0),
    ("content.view", {"topics": ["pricing"]}, 4),
    ("content.view", {"title": "白皮书"}, 12),
    ("wechat.message", {}, 0),
    ("email.click", {}, 0),
    ("form.submit", {}, 0),
]


def seed_scored_accounts(app) -> None:
    """Interactions over DAYS days (more in the last week for 华信: a surge), scored as the
    drain would, day by day, with the daily refresh writing each day's snapshots."""
    rng = random.Random(7)
    now = utcnow()
    with harpoon_of(app).db.session() as session:
        ws = workspace_named(session, "acme").id
        people: list[tuple[Contact, int]] = []
        for name, target, industry, acv, committee, weekly in ACCOUNTS:
            account = Account(
                workspace_id=ws,
                name=name,
                normalized_name=name,
                is_target=target,
                industry=industry,
                acv=acv,
            )
            session.add(account)
            session.flush()
            for role, seniority, person in committee:
                contact = Contact(
                    workspace_id=ws,
                    account_id=account.id,
                    name=person,
                    role=role,
                    seniority=seniority,
                )
                session.add(contact)
                session.flush()
                people.append((contact, weekly))
        touches = []
        for contact, weekly in people:
            touches.append((contact, "wechat.follow", {}, 0, DAYS - rng.randint(0, 20)))
            for days_ago in range(DAYS):
                busy = weekly * (3 if days_ago < 6 and weekly >= 6 else 1)
                if rng.random() < busy / 7 / 2:
                    kind, properties, minutes = rng.choice(KINDS)
                    touches.append((contact, kind, properties, minutes, days_ago + rng.random()))
        cfo = next(c for c, _ in people if c.name == "李娜")
        touches.append((cfo, "live.watch", {}, 75, 20))  # a VP's hour: the MQA rule
        touches.append((cfo, "sales.meeting", {}, 0, 2))
        rows = []
        for contact, kind, properties, minutes, days_ago in touches:
            interaction = Interaction(
                workspace_id=ws,
                contact_id=contact.id,
                account_id=contact.account_id,
                kind=kind,
                properties=properties,
                engagement_minutes=minutes,
                occurred_at=now - timedelta(days=days_ago, hours=1),
            )
            session.add(interaction)
            rows.append(interaction)
        session.flush()
        for days_ago in range(DAYS, -1, -1):
            moment = now - timedelta(days=days_ago)
            due = [r.id for r in rows if moment - timedelta(days=1) < r.occurred_at <= moment]
            scorer = Scorer.load(session, ws, moment)
            scorer.score_interaction_ids(due)
            scorer.refresh_workspace()
        session.commit()


def test_accounts_by_score_an_account_explained_and_the_dashboard(app, live_server, page):
    seed_scored_accounts(app)
    make_user(app, "owner")
    sign_in(page, live_server, "owner@acme.example")
    page.wait_for_selector("body[data-charts-ready='1']")  # every chart drawn, the ABM ones too
    for chart in ("funnel-chart", "abm-chart", "roles-chart", "abm-trend-chart"):
        expect(page.locator(f"#{chart} canvas")).to_have_count(1)
    expect(page.locator("[data-metric=reach]")).to_contain_text("4 / 5")
    screenshot(page, "scoring-dashboard")

    page.goto(f"{live_server}/admin/accounts?sort=score&dir=desc")
    rows = page.locator("main table tbody tr")
    expect(rows).to_have_count(len(ACCOUNTS))
    expect(rows.first).to_contain_text("上海华信科技")
    expect(rows.first.locator("[data-surge]")).to_contain_text("↑")
    expect(rows.first.locator("[data-mqa]")).to_contain_text("MQA")
    expect(page.locator("th[data-sort=score]")).to_have_attribute("aria-sort", "descending")
    screenshot(page, "scoring-accounts")

    page.click("th[data-sort=name] a")
    expect(page.locator("th[data-sort=name]")).to_have_attribute("aria-sort", "ascending")
    expect(rows.last).to_contain_text("深圳星云医疗")  # by code point and by pinyin

    page.goto(f"{live_server}/admin/accounts?sort=score&dir=desc")
    rows.first.locator("a").first.click()
    page.wait_for_url(re.compile(r"/admin/accounts/\d+$"))
    page.wait_for_selector("body[data-charts-ready='1']")
    expect(page.locator("#trend-chart canvas")).to_have_count(1)
    expect(page.locator("#score-contributions [data-contribution]")).to_have_count(4)
    expect(page.locator("#ledger tbody tr").first).to_be_visible()
    screenshot(page, "scoring-account")

    page.click("#stage-card button[data-stage=opportunity]")
    expect(page.locator("#stage-card select[name=stage]")).to_have_value("opportunity")
    page.click("#stage-card button.primary")
    page.wait_for_url(re.compile(r"/admin/accounts/\d+$"))
    expect(page.locator(".stage-history tbody tr").first).to_contain_text(
        "已创建商机"
    )  # the button's reason, in the page's language
    expect(page.locator("#account-scoring [data-stage]")).to_have_attribute(
        "data-stage", "opportunity"
    )
    page.locator("#stage-card").scroll_into_view_if_needed()
    screenshot(page, "scoring-account-moved")

    page.locator("#score-contributions [data-contribution] a").first.click()
    page.wait_for_url(re.compile(r"/admin/contacts/\d+$"))
    expect(page.locator("#ledger tbody tr").first).to_be_visible()
    screenshot(page, "scoring-contact")
