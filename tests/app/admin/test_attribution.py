"""The attribution page (model, dimension tabs, date range, a table and a chart, bad
choices named, never a 500) and a content item's value chain, in Chinese, per role."""

import json
import re
from datetime import timedelta

from models import utcnow
from revenue.attribution import attribute_opportunities
from tests.factories import (
    make_account,
    make_contact,
    make_content,
    make_interaction,
    make_opportunity,
    workspace_id,
)
from tests.helpers import session_of

NOW = utcnow()


def credited(app, workspace="acme", title="白皮书"):
    """One reader of a content item on an account with a ¥120,000 deal opened 5 days ago
    and won yesterday, credited."""
    account = make_account(app, "华东制造", workspace=workspace)
    reader = make_contact(app, "李雷", workspace=workspace, account_id=account)
    content = make_content(app, workspace=workspace, title=title)
    make_interaction(app, reader, "content.view", at=NOW - timedelta(days=20), content_id=content)
    make_interaction(app, reader, "form.submit", at=NOW - timedelta(days=8), campaign="春季峰会")
    make_opportunity(
        app,
        account,
        workspace=workspace,
        amount="120000",
        opened_at=NOW - timedelta(days=5),
        stage="won",
        closed_at=NOW - timedelta(days=1),
    )
    with session_of(app) as session:
        attribute_opportunities(session, workspace_id(app, workspace))
    return content


def test_marketers_and_viewers_see_what_content_influenced_and_sales_may_not(app, signed_in):
    content = credited(app)
    credited(app, workspace="globex", title="别家的白皮书")
    page = signed_in("marketer").get("/admin/revenue/attribution")
    assert page.status_code == 200
    assert "<title>归因" in page.text and 'href="/admin/revenue/attribution"' in page.text
    assert "线性" in page.text and "影响的商机金额" in page.text
    assert f'href="/admin/content/{content}"' in page.text and "白皮书" in page.text
    assert "别家的白皮书" not in page.text  # another workspace's content and deals
    assert "¥120,000.00" in page.text  # the only reader: all of the pipeline and revenue
    assert "1 个商机" in page.text and "1 个赢单" in page.text
    chart = json.loads(re.search(r'id="attribution-data">(.*?)</script>', page.text).group(1))
    assert chart["names"] == ["白皮书"] and chart["revenue"] == [120000.0]
    assert signed_in("viewer").get("/admin/revenue/attribution").status_code == 200
    sales = signed_in("sales")
    assert sales.get("/admin/revenue/attribution").status_code == 403
    assert 'href="/admin/revenue/attribution"' not in sales.get("/admin/tasks").text


def test_dimension_tabs_models_and_a_date_range(app, signed_in):
    credited(app)
    client = signed_in("marketer")
    campaigns = client.get("/admin/revenue/attribution?dimension=campaign&model=time_decay")
    assert "春季峰会" in campaigns.text and "时间衰减" in campaigns.text
    assert 'aria-current=page data-dimension="campaign"' in campaigns.text
    # Won yesterday, opened 5 days ago: a range ending 3 days ago has the pipeline only.
    until = (NOW - timedelta(days=3)).date().isoformat()
    ranged = client.get(f"/admin/revenue/attribution?until={until}")
    assert "¥120,000.00" in ranged.text and "¥0.00" in ranged.text
    later = (NOW + timedelta(days=2)).date().isoformat()
    empty = client.get(f"/admin/revenue/attribution?since={later}")
    assert "还没有商机被这个维度触达" in empty.text


def test_bad_choices_are_named_and_the_defaults_shown(app, signed_in):
    credited(app)
    page = signed_in("marketer").get(
        "/admin/revenue/attribution?model=magic&dimension=x&since=yesterday&until=2020-01-01"
        "&since=2026-01-01"
    )
    assert page.status_code == 200
    assert "未知的归因模型" in page.text and "未知的维度" in page.text
    assert "不是日期" in page.text
    both = signed_in("admin").get("/admin/revenue/attribution?since=2026-03-01&until=2026-02-01")
    assert both.status_code == 200 and "不能早于开始日期" in both.text


def test_a_content_items_value_chain(app, signed_in):
    content = credited(app)
    other = credited(app, workspace="globex", title="别家的白皮书")
    client = signed_in("marketer")
    detail = client.get(f"/admin/content/{content}")
    assert f'href="/admin/content/{content}/value-chain"' in detail.text
    page = client.get(f"/admin/content/{content}/value-chain")
    assert page.status_code == 200 and "价值链" in page.text
    steps = dict(
        re.findall(
            r'data-step="(\w+)">\s*<td[^>]*>[^<]*</td>\s*<td class="num">([^<]*)<', page.text
        )
    )
    assert steps == {
        "readers": "1",
        "followers": "0",
        "members": "0",
        "mql": "0",
        "mqa": "0",
        "opportunities": "1",
        "revenue": "¥120,000.00",
    }
    funnel = json.loads(re.search(r'id="value-chain-data">(.*?)</script>', page.text).group(1))
    assert funnel[0] == ["读者", 1] and funnel[-1] == ["商机", 1]
    assert client.get(f"/admin/content/{other}/value-chain").status_code == 404
    sales = signed_in("sales")
    assert sales.get(f"/admin/content/{content}/value-chain").status_code == 403
    assert "/value-chain" not in sales.get(f"/admin/content/{content}").text


def test_dates_far_outside_2000_to_2100_are_ignored_with_a_message(app, signed_in):
    credited(app)
    client = signed_in("marketer")
    for query in ("until=9999-12-31", "since=0001-01-01", "since=0001-01-01&until=9999-12-31"):
        page = client.get(f"/admin/revenue/attribution?{query}")
        assert page.status_code == 200, query
        assert "日期须在 2000 年至 2100 年之间：已忽略。" in page.text, query
        assert "白皮书" in page.text, query  # the credit is shown, the range left out
