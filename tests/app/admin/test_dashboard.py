"""Dashboard: KPIs and chart series from real callbacks, per workspace, signed in only."""

import re
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from tests.conftest import OA_CREDS, make_channel, run_jobs
from tests.helpers import post_oa
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
