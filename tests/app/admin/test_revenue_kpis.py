"""The revenue dashboard (/admin/revenue): renders empty and with data in Chinese, money in
yuan with separators, filters by tier and owner, bad filters ignored with a message, a
salesperson held to their own accounts, another workspace never counted."""

import json
import re
from datetime import timedelta

from models import utcnow
from tests.app.admin.helpers import in_english, sign_in
from tests.factories import (
    make_account,
    make_contact,
    make_interaction,
    make_opportunity,
    make_user,
)


def chart_data(page) -> dict:
    match = re.search(
        r'<script id="revenue-data" type="application/json">(.*?)</script>', page.text
    )
    return json.loads(match.group(1))


def tile(page, key) -> str:
    match = re.search(
        rf'data-kpi="{key}"[^>]*>.*?<div class="value">([^<]*)</div>', page.text, re.S
    )
    return match.group(1)


def deals(app):
    """Two owners' accounts with deals in the last days, and another workspace's."""
    a = make_user(app, "sales", email="a@acme.example")
    b = make_user(app, "marketer", email="b@acme.example")
    days_ago = lambda n: utcnow() - timedelta(days=n)  # noqa: E731
    mine = make_account(app, "华信科技", tier=1, owner_id=a, stage="mqa")
    theirs = make_account(app, "紫金银行", tier=2, owner_id=b, stage="mqa")
    make_opportunity(app, mine, amount="1234567.89", stage="solution", opened_at=days_ago(3))
    make_opportunity(
        app, theirs, amount="50000", stage="won", opened_at=days_ago(20), closed_at=days_ago(2)
    )
    make_opportunity(
        app, theirs, amount="70000", stage="lost", opened_at=days_ago(10), closed_at=days_ago(1)
    )
    person = make_contact(app, "李娜", account_id=mine)
    make_interaction(app, person, "survey.nps", at=days_ago(1), score=10)
    elsewhere = make_account(app, "别家", workspace="other", tier=1, stage="mqa")
    make_opportunity(app, elsewhere, workspace="other", amount="999999", stage="solution")
    return {"a": a, "b": b}


def test_the_empty_dashboard_says_why_each_chart_is_empty(signed_in):
    page = signed_in("viewer").get("/admin/revenue")
    assert page.status_code == 200
    assert "营收" in page.text
    assert "本期没有已关闭的商机。" in page.text
    assert "本期没有新建或赢单的商机。" in page.text
    assert "还没有账户进入任何阶段。" in page.text
    assert "本期没有 NPS 回答" in page.text
    assert 'data-chart="revenue-bars"' not in page.text
    assert tile(page, "pipeline_created") == "¥0"
    assert tile(page, "win_rate") == "—"


def test_the_dashboard_shows_the_periods_kpis_in_yuan(app, signed_in):
    deals(app)
    page = signed_in("viewer").get("/admin/revenue")
    assert page.status_code == 200
    assert tile(page, "pipeline_created") == "¥1,354,567.89"
    assert tile(page, "won_revenue") == "¥50,000"
    assert tile(page, "win_rate") == "50.0%"
    assert tile(page, "weighted_pipeline") == "¥370,370.37"  # 30% of 1,234,567.89
    assert tile(page, "nps") == "+100"
    assert "999,999" not in page.text  # another workspace's
    data = chart_data(page)
    assert sum(data["pipeline"]) == 1354567.89
    assert [s["type"] for s in data["won"]] == ["new"]
    for chart in ("revenue-bars", "revenue-rates", "revenue-funnel", "revenue-nps"):
        assert f'data-chart="{chart}"' in page.text
    assert "本期没有已关闭的商机。" not in page.text


def test_tier_and_owner_filter_the_accounts(app, signed_in):
    people = deals(app)
    client = signed_in("marketer")
    tier_2 = client.get("/admin/revenue?tier=2")
    assert tile(tier_2, "pipeline_created") == "¥120,000"
    owner_a = client.get(f"/admin/revenue?owner={people['a']}")
    assert tile(owner_a, "pipeline_created") == "¥1,234,567.89"
    assert tile(owner_a, "won_revenue") == "¥0"


def test_bad_filters_are_ignored_with_a_message(app, signed_in):
    deals(app)
    client = signed_in("marketer")
    in_english(client)
    for query, message in [
        ("tier=9", "No tier 9: every tier is shown."),
        ("tier=<b>x</b>", "No tier &lt;b&gt;x&lt;/b&gt;: every tier is shown."),
        ("owner=999999999999999999999", "No such owner"),
        ("owner=abc", "No such owner"),
        ("start=yesterday", "The start date is not a date"),
        ("end=2026-13-40", "The end date is not a date"),
        ("start=2026-09-30&end=2026-09-01", "they were swapped"),
        ("start=0001-01-01&end=0001-01-02", "Dates before 2000 are not shown."),
        ("start=2001-01-01", "At most three years at once"),
        ("start=9999-12-31&end=9999-12-31", "The start date was after today"),
        ("start=9999-12-31", "The start date was after today"),
        ("start=0001-01-01&end=9999-12-31", "Dates before 2000 are not shown."),
        ("tier=²&owner=²", "No tier ²: every tier is shown."),
        ("owner=²", "No such owner"),
    ]:
        page = client.get(f"/admin/revenue?{query}")
        assert page.status_code == 200, query
        assert message in page.text, query
    assert tile(client.get("/admin/revenue?tier=9"), "pipeline_created") == "¥1,354,567.89"
    assert client.get("/admin/revenue?grain=fortnight&start=&end=").status_code == 200


def test_another_workspaces_owner_is_unknown_here(app, signed_in):
    deals(app)
    stranger = make_user(app, "marketer", "other", email="x@other.example")
    page = signed_in("marketer").get(f"/admin/revenue?owner={stranger}")
    assert "没有这个负责人" in page.text
    assert tile(page, "pipeline_created") == "¥1,354,567.89"


def test_a_salesperson_sees_their_own_accounts_only(app):
    people = deals(app)
    client = app.test_client()
    assert sign_in(client, "a@acme.example").status_code == 302
    page = client.get(f"/admin/revenue?owner={people['b']}")
    assert page.status_code == 200
    assert tile(page, "pipeline_created") == "¥1,234,567.89"
    assert tile(page, "won_revenue") == "¥0"
    assert 'name="owner"' not in page.text


def test_the_navigation_shows_revenue_after_the_dashboard(signed_in):
    page = signed_in("viewer").get("/admin/revenue")
    assert re.search(r">仪表盘</a></li>\s*<li><a href=\"/admin/revenue\"[^>]*>营收<", page.text)


def test_weekly_buckets(app, signed_in):
    deals(app)
    page = signed_in("marketer").get("/admin/revenue?grain=week&start=2026-01-05&end=2026-01-25")
    assert chart_data(page)["buckets"] == ["2026-01-05", "2026-01-12", "2026-01-19"]
