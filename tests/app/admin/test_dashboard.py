"""Dashboard: KPIs and chart series from real callbacks, per workspace, signed in only; the
stage funnel and the ABM metrics of the target accounts."""

import re
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from crm.channels import workspace_named
from models import Account, AccountSnapshot, Contact
from tests.app.admin.helpers import in_english
from tests.factories import make_channel
from tests.helpers import OA_CREDS, harpoon_of, post_oa, run_jobs
from wechat import simulate


def follow_and_click(app, client, channel_id, openids, unfollow=()):
    now = int(time.time())
    for openid in openids:
        post_oa(client, channel_id, simulate.oa_event(openid, "subscribe", at=now))
    post_oa(client, channel_id, simulate.oa_event(openids[0], "CLICK", at=now, EventKey="K"))
    for openid in unfollow:
        post_oa(client, channel_id, simulate.oa_event(openid, "unsubscribe", at=now + 1))
    run_jobs(app)


def kinds_today(series):
    return {s["kind"]: s["counts"][-1] for s in series["interactions"]["series"]}


def test_kpis_count_followers_from_callbacks(app, client, oa_channel, signed_in):
    follow_and_click(app, client, oa_channel, ["o_1", "o_2", "o_3"], unfollow=["o_3"])
    page = signed_in("viewer").get("/admin/")
    assert page.status_code == 200
    assert 'data-kpi="followers">2<' in page.text
    # Followers now, follows in 24 h, interactions in 24 h (3 follows, a click, an unfollow).
    assert re.findall(r'<div class="value"[^>]*>(\d+)</div>', page.text) == ["2", "3", "5"]


def test_series_has_thirty_follow_days_and_kinds_for_today(app, client, oa_channel, signed_in):
    follow_and_click(app, client, oa_channel, ["o_1", "o_2", "o_3"], unfollow=["o_3"])
    response = signed_in("viewer").get("/admin/api/dashboard/series")
    assert response.status_code == 200
    data = response.get_json()
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()  # the workspace's zone
    follows = data["follows"]
    assert len(follows["days"]) == len(follows["counts"]) == 30
    assert follows["days"][-1] == today
    assert follows["counts"][-1] == 3 and sum(follows["counts"]) == 3
    assert len(data["interactions"]["days"]) == 14
    assert data["interactions"]["days"][-1] == today
    assert kinds_today(data) == {"wechat.follow": 3, "wechat.menu_click": 1, "wechat.unfollow": 1}
    assert [s["kind"] for s in data["interactions"]["series"]] == sorted(kinds_today(data))


def test_another_workspaces_data_is_not_counted(app, client, oa_channel, signed_in):
    theirs = make_channel(
        app, "oa", OA_CREDS, workspace="globex", message_mode="safe", account_type="service"
    )
    follow_and_click(app, client, oa_channel, ["o_1"])
    follow_and_click(app, client, theirs, ["o_7", "o_8", "o_9"])
    ours = signed_in("viewer")
    assert 'data-kpi="followers">1<' in ours.get("/admin/").text
    data = ours.get("/admin/api/dashboard/series").get_json()
    assert data["follows"]["counts"][-1] == 1
    assert kinds_today(data) == {"wechat.follow": 1, "wechat.menu_click": 1}
    globex = signed_in("viewer", "globex")
    assert 'data-kpi="followers">3<' in globex.get("/admin/").text
    assert globex.get("/admin/api/dashboard/series").get_json()["follows"]["counts"][-1] == 3


def test_signed_out_json_call_gets_no_data(client):
    response = client.get("/admin/api/dashboard/series")
    assert response.status_code in (302, 401)
    assert response.status_code == 401 or "/admin/login" in response.headers["Location"]
    assert b"follows" not in response.data


def test_dashboard_shows_the_oldest_pending_event(app, client, oa_channel, signed_in):
    post_oa(client, oa_channel, simulate.oa_event("o_1", "subscribe"))  # stored, not drained
    page = signed_in("viewer").get("/admin/")
    assert page.status_code == 200
    assert re.search(r"\d\d:\d\d:\d\d", page.text)  # the oldest pending event's time


def abm_workspace(app):
    """Two target accounts (one at MQA with a CIO and an ACV, one unknown), a customer
    that is no target, today's snapshots, and another workspace's target."""
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date()
    with harpoon_of(app).db.session() as session:
        ws = workspace_named(session, "acme").id

        def account(name, workspace=ws, **fields):
            row = Account(workspace_id=workspace, name=name, normalized_name=name, **fields)
            session.add(row)
            session.flush()
            return row

        hot = account("甲", is_target=True, stage="mqa", acv=500_000, engagement_points=30)
        session.add(Contact(workspace_id=ws, account_id=hot.id, role="cio"))
        cold = account("乙", is_target=True, stage="target")
        account("丙", stage="customer")
        theirs = account("丁", workspace_named(session, "globex").id, is_target=True, stage="mqa")
        for row, stage in ((hot, "mqa"), (cold, "target"), (theirs, "mqa")):
            session.add(
                AccountSnapshot(
                    workspace_id=row.workspace_id,
                    account_id=row.id,
                    day=today,
                    score=0,
                    stage=stage,
                    mqa=stage == "mqa",
                )
            )
        session.commit()
    return today


def test_the_abm_metrics_and_funnel_of_target_accounts(app, signed_in):
    today = abm_workspace(app)
    client = in_english(signed_in("viewer"))
    page = client.get("/admin/").text
    assert "ABM metrics of 2 target accounts" in page
    metrics = dict(re.findall(r'data-metric="(\w+)">(.*?)</tr>', page, re.S))
    assert "1 / 2" in metrics["reach"] and "50%" in metrics["reach"]
    assert "1 of 18 roles" in metrics["coverage"] and "5.6%" in metrics["coverage"]
    assert "1 / 2" in metrics["engagement"] and "ACV 500,000" in metrics["impact"]
    assert re.findall(r'<div class="value"[^>]*>(\d+)</div>', page) == ["0", "0", "0"]

    data = client.get("/admin/api/dashboard/abm").get_json()
    assert [(s["key"], s["accounts"], s["reached"]) for s in data["funnel"]][:5] == [
        ("target", 1, 3),
        ("aware", 0, 2),
        ("engaged", 0, 2),
        ("mqa", 1, 2),
        ("meeting", 0, 1),  # the customer, later still
    ]
    assert data["funnel"][3]["name"] == "MQA" and data["targets"] == 2
    shares = {m["key"]: m["share"] for m in data["metrics"]}
    assert shares == {
        "reach": 0.5,
        "coverage": round(1 / 18, 4),
        "awareness": 0.5,
        "engagement": 0.5,
        "impact": 0.5,
    }
    assert data["impact_acv"] == 500_000
    assert {r["role"]: r["share"] for r in data["roles"]}["cio"] == 0.5
    trend = data["trend"]
    assert len(trend["days"]) == 30 and trend["days"][-1] == today.isoformat()
    impact = next(s for s in trend["series"] if s["key"] == "impact")["shares"]
    assert impact[-1] == 0.5 and impact[:-1] == [None] * 29  # no snapshots before today


def test_no_target_accounts_no_abm_charts(app, signed_in):
    page = in_english(signed_in("viewer")).get("/admin/").text
    assert "ABM metrics of 0 target accounts" in page and "import an ICP list" in page
    assert 'id="abm-trend-chart"' not in page and 'id="funnel-chart"' in page
    data = signed_in("viewer", "globex").get("/admin/api/dashboard/abm").get_json()
    assert data["targets"] == 0 and data["metrics"][0]["share"] == 0
