"""Tracked links end to end against the sandbox: silent OAuth (and its CSRF state), the
visitor cookie, anonymous views, shares (a staff member's, a forwarded page's; forged and
expired tokens refused), the reading beacon, likes, and what the drain records and scores."""

import time
from urllib.parse import urlsplit

import itsdangerous.timed
import pytest
import requests
from sqlalchemy import select

from core.tokens import Purpose, Sharer, Signer, share_token
from crm.channels import workspace_named
from demo.seed import register_tenant
from models import (
    Channel,
    Contact,
    Content,
    ContentKind,
    Identity,
    Interaction,
    LinkMedium,
    PageView,
    ScoreEntry,
    Staff,
)
from outreach.content import create_link
from tests.conftest import OA_CREDS, harpoon_of, make_channel, run_jobs
from tests.wechat.sandbox_server import SandboxServer

OA_SECRET = "oa-app-secret"
WECHAT = {"User-Agent": "Mozilla/5.0 (iPhone) AppleWebKit MicroMessenger/8.0.50 NetType/WIFI"}
BROWSER = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Chrome/130.0"}


@pytest.fixture(scope="module")
def platform():
    server = SandboxServer()
    yield server
    server.close()


@pytest.fixture
def app(make_app, platform):
    with platform.state.lock:
        platform.state.tenants.clear()
    return make_app(wechat_api_url=platform.url)


def connect_oa(app, platform) -> int:
    """A service OA the sandbox knows (its callbacks go nowhere); returns its id."""
    channel_id = make_channel(
        app, "oa", OA_CREDS, message_mode="safe", account_type="service", secret=OA_SECRET
    )
    with harpoon_of(app).db.session() as session:
        register_tenant(platform.state, session.get(Channel, channel_id), "http://127.0.0.1:9")
    return channel_id


@pytest.fixture
def channel_id(app, platform):
    return connect_oa(app, platform)


def make_content(app, channel_id, *, url="https://example.com/pricing", body=None, topics=None):
    """A content item and its tracked link (medium: menu); returns (content id, link code)."""
    with harpoon_of(app).db.session() as session:
        workspace = workspace_named(session, "acme")
        content = Content(
            workspace_id=workspace.id,
            kind=ContentKind.PAGE if body else ContentKind.ARTICLE,
            title="价格方案",
            url=None if body else url,
            body=body,
            topics=topics if topics is not None else ["pricing"],
            products=["harpoon"],
        )
        session.add(content)
        session.flush()
        link = create_link(
            session,
            workspace.id,
            content_id=content.id,
            channel_id=channel_id,
            medium=LinkMedium.MENU,
        )
        session.commit()
        return content.id, link.code


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def open_in_wechat(client, platform, path: str, openid: str, *, code_sink=None):
    """Open a link as WeChat's browser does: our redirect to the platform's authorize page
    (the sandbox is told who reads; WeChat knows), its redirect back with a code."""
    answer = client.get(path, headers=WECHAT)
    if answer.status_code == 302 and answer.location.startswith(platform.url):
        authorize = answer.location.split("#")[0] + f"&openid={openid}"
        back = requests.get(authorize, allow_redirects=False, timeout=5)
        assert back.status_code == 302, back.text
        if code_sink is not None:
            code_sink.append(back.headers["Location"])
        answer = client.get(local(back.headers["Location"]), headers=WECHAT)
    return answer


def all_rows(app, model, *where):
    with harpoon_of(app).db.session() as session:
        return list(session.scalars(select(model).where(*where).order_by(model.id)))


def test_a_reader_in_wechat_is_named_by_silent_oauth_and_the_view_is_scored(
    app, platform, channel_id
):
    content_id, code = make_content(app, channel_id)
    client = app.test_client()

    first = client.get(f"/t/{code}", headers=WECHAT)
    assert first.status_code == 302
    assert first.location.startswith(f"{platform.url}/open/connect/oauth2/authorize?")
    assert "scope=snsapi_base" in first.location and f"appid={OA_CREDS.app_id}" in first.location

    answer = open_in_wechat(client, platform, f"/t/{code}", "oReader1")
    assert answer.status_code == 302
    assert answer.location == "https://example.com/pricing"
    run_jobs(app)

    [view] = all_rows(app, PageView)
    assert (view.openid, view.content_id, view.channel_id) == ("oReader1", content_id, channel_id)
    [interaction] = all_rows(app, Interaction, Interaction.kind == "content.view")
    assert interaction.properties["topics"] == ["pricing"]
    assert interaction.properties["content_id"] == content_id
    assert interaction.properties["medium"] == "menu"
    [identity] = all_rows(app, Identity, Identity.value == "oReader1")
    assert identity.contact_id == interaction.contact_id == view.contact_id
    assert view.new_lead is True
    rules = {e.rule_key for e in all_rows(app, ScoreEntry)}
    assert "content_pricing" in rules


def test_the_visitor_cookie_spares_the_next_link_its_oauth_round_trip(app, platform, channel_id):
    _, code = make_content(app, channel_id)
    _, other = make_content(app, channel_id, url="https://example.com/case")
    client = app.test_client()
    open_in_wechat(client, platform, f"/t/{code}", "oReader2")

    again = client.get(f"/t/{other}", headers=WECHAT)
    assert again.status_code == 302 and again.location == "https://example.com/case"
    assert [v.openid for v in all_rows(app, PageView)] == ["oReader2", "oReader2"]


def test_an_oauth_return_with_a_state_not_of_this_browser_is_refused(app, platform, channel_id):
    _, code = make_content(app, channel_id)
    victim, attacker = app.test_client(), app.test_client()
    returns = []
    open_in_wechat(attacker, platform, f"/t/{code}", "oAttacker", code_sink=returns)
    views_before = len(all_rows(app, PageView))

    # The attacker's return URL (their code and state) opened in the victim's browser.
    forged = victim.get(local(returns[0]), headers=WECHAT)
    assert forged.status_code == 400
    # The victim's own round trip, but the state altered.
    start = victim.get(f"/t/{code}", headers=WECHAT)
    authorize = start.location.split("#")[0] + "&openid=oVictim"
    back = requests.get(authorize, allow_redirects=False, timeout=5).headers["Location"]
    tampered = local(back).replace("state=", "state=x")
    assert victim.get(tampered, headers=WECHAT).status_code == 400
    assert len(all_rows(app, PageView)) == views_before


def test_a_code_the_platform_refuses_still_shows_the_content_unnamed(app, platform, channel_id):
    _, code = make_content(app, channel_id)
    client = app.test_client()
    returns = []
    open_in_wechat(client, platform, f"/t/{code}", "oReader3", code_sink=returns)
    other = app.test_client()
    start = other.get(f"/t/{code}", headers=WECHAT)
    nonce = dict(p.split("=", 1) for p in urlsplit(start.location).query.split("&"))["state"]
    used_code = dict(p.split("=", 1) for p in urlsplit(returns[0]).query.split("&"))["code"]

    answer = other.get(f"/t/oauth?code={used_code}&state={nonce}", headers=WECHAT)  # 40163

    assert answer.status_code == 302 and answer.location == "https://example.com/pricing"
    views = all_rows(app, PageView)
    assert [v.openid for v in views] == ["oReader3", None]
    run_jobs(app)
    assert len(all_rows(app, Interaction)) == 1


def test_outside_wechat_a_view_counts_but_names_and_scores_nobody(app, platform, channel_id):
    _, code = make_content(app, channel_id)
    answer = app.test_client().get(f"/t/{code}", headers=BROWSER)
    assert answer.status_code == 302 and answer.location == "https://example.com/pricing"
    run_jobs(app)
    [view] = all_rows(app, PageView)
    assert view.openid is None and view.contact_id is None
    assert all_rows(app, Interaction) == []


def test_unknown_and_archived_links_are_not_found(app, channel_id):
    assert app.test_client().get("/t/nosuchcd").status_code == 404


def staff_member(app, channel_id) -> tuple[int, int]:
    with harpoon_of(app).db.session() as session:
        workspace = workspace_named(session, "acme")
        staff = Staff(
            workspace_id=workspace.id, channel_id=channel_id, userid="zhangsan", name="张三"
        )
        session.add(staff)
        session.commit()
        return workspace.id, staff.id


def test_a_staff_share_is_attributed_and_forged_or_expired_shares_are_not(
    app, platform, channel_id, monkeypatch
):
    _, code = make_content(app, channel_id)
    workspace_id, staff_id = staff_member(app, channel_id)
    signer = Signer("test-secret-key")
    token = share_token(signer, Sharer(workspace_id, staff_id=staff_id))
    forged = share_token(Signer("not-our-key"), Sharer(workspace_id, staff_id=staff_id))
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    real_time = time.time
    monkeypatch.setattr(
        itsdangerous.timed, "time", type("T", (), {"time": lambda: real_time() - 200 * 86400})
    )
    expired = share_token(signer, Sharer(workspace_id, staff_id=staff_id))
    monkeypatch.undo()

    for n, share in enumerate((token, forged, tampered, expired)):
        open_in_wechat(app.test_client(), platform, f"/t/{code}?s={share}", f"oFriend{n}")

    views = all_rows(app, PageView)
    assert [v.sharer_staff_id for v in views] == [staff_id, None, None, None]
    run_jobs(app)
    via_share = [i.properties.get("via_share") for i in all_rows(app, Interaction)]
    assert via_share == [True, None, None, None]


def test_a_personal_share_keeps_its_sharer_for_a_reader_outside_wechat(app, platform, channel_id):
    _, code = make_content(app, channel_id)
    workspace_id, staff_id = staff_member(app, channel_id)
    with harpoon_of(app).db.session() as session:
        customer = Contact(workspace_id=workspace_id, name="王芳")
        session.add(customer)
        session.commit()
        customer_id = customer.id
    signer = Signer("test-secret-key")
    for sharer in (
        Sharer(workspace_id, staff_id=staff_id),
        Sharer(workspace_id, contact_id=customer_id),
    ):
        answer = app.test_client().get(
            f"/t/{code}?s={share_token(signer, sharer)}", headers=BROWSER
        )
        assert answer.status_code == 302 and answer.location == "https://example.com/pricing"

    views = all_rows(app, PageView)
    assert [(v.openid, v.sharer_staff_id, v.sharer_contact_id) for v in views] == [
        (None, staff_id, None),
        (None, None, customer_id),
    ]


def test_a_forwarded_page_becomes_its_readers_share_and_brings_them_a_lead(
    app, platform, channel_id
):
    _, code = make_content(app, channel_id, body="第一段。\n\n第二段。", topics=["ai"])
    reader = app.test_client()
    page = open_in_wechat(reader, platform, f"/t/{code}", "oSharer")
    assert page.status_code == 302 and page.location.startswith(f"/p/{code}?v=")
    shown = reader.get(page.location, headers=WECHAT)
    assert shown.status_code == 200 and "第二段。" in shown.text
    run_jobs(app)

    friend = app.test_client()
    forwarded = friend.get(page.location, headers=WECHAT)  # no visitor cookie: not the reader
    assert forwarded.status_code == 302 and forwarded.location.startswith(f"/t/{code}?s=")
    landed = open_in_wechat(friend, platform, forwarded.location, "oNewcomer")
    assert friend.get(landed.location, headers=WECHAT).status_code == 200
    run_jobs(app)

    sharer_view, friend_view = all_rows(app, PageView)
    assert friend_view.sharer_openid == "oSharer"
    assert friend_view.sharer_contact_id == sharer_view.contact_id is not None
    assert friend_view.new_lead is True and friend_view.contact_id != sharer_view.contact_id
    shown = friend.get(landed.location, headers=WECHAT)
    assert 'data-testid="sharer-card"' in shown.text


def view_token_of(app, location: str) -> str:
    return dict(p.split("=", 1) for p in urlsplit(location).query.split("&"))["v"]


def test_the_beacon_records_reading_likes_and_shares_of_real_views_only(app, platform, channel_id):
    _, code = make_content(app, channel_id, body="正文", topics=["ai"])
    client = app.test_client()
    page = open_in_wechat(client, platform, f"/t/{code}", "oBeacon")
    token = view_token_of(app, page.location)
    [view] = all_rows(app, PageView)
    with harpoon_of(app).db.session() as session:  # the reader opened the page 10 minutes ago
        row = session.get(PageView, view.id)
        row.started_at = row.started_at.replace(microsecond=0) - __import__("datetime").timedelta(
            minutes=10
        )
        session.commit()

    forged = Signer("not-our-key").sign(Purpose.VIEW, {"v": view.id, "w": view.workspace_id})
    assert client.post("/b", data={"v": forged, "e": "read", "s": "300"}).status_code == 400
    assert client.post("/b", data={"v": token, "e": "dance"}).status_code == 400
    assert client.post("/b", data={"v": token, "e": "read", "s": "30"}).status_code == 204
    # A heartbeat updates the statistics; leaving records the reading, capped by the time
    # since the view began (10 minutes, however much the beacon claims).
    assert (
        client.post("/b", data={"v": token, "e": "read", "s": "99999", "f": "1"}).status_code == 204
    )
    for _ in range(2):
        assert client.post("/b", data={"v": token, "e": "like"}).status_code == 204
        assert client.post("/b", data={"v": token, "e": "share"}).status_code == 204
    run_jobs(app)

    [view] = all_rows(app, PageView)
    assert 600 <= view.active_seconds <= 610 and view.liked and view.shares == 2
    kinds = sorted(i.kind for i in all_rows(app, Interaction))
    assert kinds == ["content.like", "content.read", "content.share", "content.view"]
    [read] = all_rows(app, Interaction, Interaction.kind == "content.read")
    assert 10.0 <= read.engagement_minutes <= 10.2
    [entry] = all_rows(app, ScoreEntry, ScoreEntry.rule_key == "content_read")
    assert entry.minutes == read.engagement_minutes and entry.points == pytest.approx(
        0.5 * read.engagement_minutes
    )


@pytest.mark.parametrize("reader", ["oBound", None], ids=["in WeChat", "anonymous"])
def test_a_forwarded_view_token_lets_a_stranger_read_but_not_report_as_the_reader(
    app, platform, channel_id, reader
):
    _, code = make_content(app, channel_id, body="正文", topics=["ai"])
    client = app.test_client()
    if reader:
        page = open_in_wechat(client, platform, f"/t/{code}", reader)
    else:
        page = client.get(f"/t/{code}", headers=BROWSER)
    token = view_token_of(app, page.location)
    run_jobs(app)

    stranger = app.test_client()
    if reader is None:  # an anonymous page is anyone's to read; a named one becomes a share
        assert "正文" in stranger.get(page.location, headers=BROWSER).text
    stranger.set_cookie("hp_b", "a-browser-id-of-their-own")
    for fields in ({"e": "read", "s": "30", "f": "1"}, {"e": "like"}, {"e": "share"}):
        assert stranger.post("/b", data={"v": token, **fields}).status_code == 403
    run_jobs(app)
    [view] = all_rows(app, PageView)
    assert (view.active_seconds, view.liked, view.shares) == (0, False, 0)
    assert [i.kind for i in all_rows(app, Interaction)] == (["content.view"] if reader else [])

    assert client.post("/b", data={"v": token, "e": "like"}).status_code == 204
    assert all_rows(app, PageView)[0].liked


def test_an_openid_the_platform_does_not_know_never_blocks_the_oas_enrichment(
    app, platform, channel_id
):
    """A reader's openid is looked up (user/info) like a follower's; a bogus one posted
    through the API is marked, and the batch it came with is enriched all the same."""
    from crm.api_keys import create_api_key

    _, code = make_content(app, channel_id)
    open_in_wechat(app.test_client(), platform, f"/t/{code}", "oRealReader")
    with harpoon_of(app).db.session() as session:
        key = create_api_key(session, workspace_named(session, "acme").id, "crm").key
        session.commit()
    answer = app.test_client().post(
        "/api/v1/touchpoints",
        json={"items": [{"kind": "email.open", "openid": "oNobodyAtAll"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.json["accepted"] == 1
    run_jobs(app)

    details = {i.value: i.details for i in all_rows(app, Identity, Identity.kind == "openid")}
    assert details["oRealReader"]["subscribe"] == 0  # read, never followed
    assert details["oNobodyAtAll"] == {"error": "40003 invalid openid"}


def test_a_script_cannot_flood_the_beacon(app, platform, channel_id):
    _, code = make_content(app, channel_id, body="正文")
    client = app.test_client()
    page = open_in_wechat(client, platform, f"/t/{code}", "oFlood")
    token = view_token_of(app, page.location)
    answers = [client.post("/b", data={"v": token, "e": "like"}).status_code for _ in range(601)]
    assert answers.count(204) == 600 and answers[-1] == 429
