"""Contacts page: list, search, pagination, interaction counts, detail with the timeline,
the lead score, points and stage, moved by hand."""

import re
import time

import pytest
from sqlalchemy import select, update

from models import Account, AuditLog, Contact, StageChange
from tests.app.admin.helpers import contact_ids, csrf_token, in_english
from tests.app.admin.helpers import contact_row as row_of
from tests.factories import add_contacts, make_channel
from tests.helpers import (
    OA_CREDS,
    WECOM_CREDS,
    harpoon_of,
    identities,
    post_oa,
    post_wecom,
    run_jobs,
)
from wechat import simulate


def name_contact(app, contact_id, name, account=None):
    with harpoon_of(app).db.session() as session:
        account_id = None
        if account:
            contact = session.get(Contact, contact_id)
            row = Account(workspace_id=contact.workspace_id, name=account, normalized_name=account)
            session.add(row)
            session.flush()
            account_id = row.id
        session.execute(
            update(Contact).where(Contact.id == contact_id).values(name=name, account_id=account_id)
        )
        session.commit()


@pytest.fixture
def followers(app, client, oa_channel, wecom_channel):
    """Li follows from a QR code, taps a menu and asks a question; Wang scans; Zhao adds sales
    on WeCom. All through signed callbacks and the real worker; returns contact ids by openid."""
    now = int(time.time()) - 60
    events = [
        simulate.oa_event("o_li", "subscribe", at=now, EventKey="qrscene_expo", Ticket="T1"),
        simulate.oa_event("o_li", "CLICK", at=now + 1, EventKey="MENU_PRICING"),
        simulate.oa_text("o_li", "报价多少?", 880001, at=now + 2),
        simulate.oa_event("o_wang", "SCAN", at=now + 3, EventKey="booth7", Ticket="T2"),
    ]
    for xml in events:
        post_oa(client, oa_channel, xml)
    post_wecom(
        client,
        wecom_channel,
        simulate.wecom_contact_event(
            WECOM_CREDS.app_id,
            "add_external_contact",
            user_id="sales_zhang",
            external_user_id="wm_zhao",
            at=now + 4,
            State="expo",
            WelcomeCode="WELCOME_CODE_1",
        ),
    )
    assert run_jobs(app)
    return {identity.value: identity.contact_id for identity in identities(app)}


def test_list_shows_identities_accounts_and_interaction_counts(app, signed_in, followers):
    name_contact(app, followers["o_li"], "Li Wei", account="Acme Robotics")
    page = in_english(signed_in("viewer")).get("/admin/contacts")
    assert page.status_code == 200
    # Newest activity first: Zhao (WeCom), then Wang, then Li.
    assert contact_ids(page.text) == [followers["wm_zhao"], followers["o_wang"], followers["o_li"]]
    li = row_of(page.text, followers["o_li"])
    assert "Li Wei" in li and "Acme Robotics" in li and "openid" in li
    assert '<td class="num">3</td>' in li
    assert '<td class="num">1</td>' in row_of(page.text, followers["o_wang"])
    zhao = row_of(page.text, followers["wm_zhao"])
    assert "external_userid" in zhao and "Unnamed" not in li
    assert f"Unnamed #{followers['wm_zhao']}" in zhao
    assert "3 contacts" in page.text


def test_every_role_may_view_contacts(signed_in, followers):
    for role in ("owner", "admin", "marketer", "sales", "viewer"):
        assert signed_in(role).get("/admin/contacts").status_code == 200
        assert signed_in(role, "ws2").get(f"/admin/contacts/{followers['o_li']}").status_code == 404


def test_search_by_name_in_part_and_any_case(app, signed_in, followers):
    name_contact(app, followers["o_li"], "Li Wei")
    name_contact(app, followers["o_wang"], "王伟 50%_off")
    client = signed_in("marketer")
    for q in ("li wei", "WEI", "  Li  "):
        assert contact_ids(client.get("/admin/contacts", query_string={"q": q}).text) == [
            followers["o_li"]
        ], q
    assert contact_ids(client.get("/admin/contacts?q=王").text) == [followers["o_wang"]]
    # LIKE wildcards in the term are literal characters.
    assert contact_ids(client.get("/admin/contacts?q=0%25_").text) == [followers["o_wang"]]
    assert contact_ids(client.get("/admin/contacts?q=%25").text) == [followers["o_wang"]]
    assert contact_ids(client.get("/admin/contacts?q=_").text) == [followers["o_wang"]]


def test_search_by_an_exact_identity_value(signed_in, followers):
    client = in_english(signed_in("marketer"))
    assert contact_ids(client.get("/admin/contacts?q=o_wang").text) == [followers["o_wang"]]
    assert contact_ids(client.get("/admin/contacts?q=wm_zhao").text) == [followers["wm_zhao"]]
    page = client.get("/admin/contacts?q=o_wan").text  # identities match only in full
    assert contact_ids(page) == [] and "No contact matches." in page


def test_the_search_box_gets_only_the_table_from_htmx(signed_in, followers):
    client = signed_in("marketer")
    page = client.get("/admin/contacts").text
    assert 'hx-trigger="input changed delay:300ms"' in page and 'hx-push-url="true"' in page
    assert '<form class="toolbar" method="get"' in page  # and works without JavaScript

    partial = client.get("/admin/contacts?q=o_li", headers={"HX-Request": "true"})
    assert "<html" not in partial.text and "<table>" in partial.text
    assert contact_ids(partial.text) == [followers["o_li"]]
    assert "HX-Request" in partial.headers["Vary"]
    restore = client.get(
        "/admin/contacts?q=o_li",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in restore.text


def test_fifty_contacts_a_page_newest_first(app, signed_in):
    ids = add_contacts(app, 60)
    client = in_english(signed_in("marketer"))
    first = client.get("/admin/contacts").text
    assert contact_ids(first) == ids[:50]
    assert "Page 1 of 2" in first and "60 contacts" in first
    assert 'href="/admin/contacts?page=2"' in first
    second = client.get("/admin/contacts?page=2").text
    assert contact_ids(second) == ids[50:] and "Page 2 of 2" in second
    assert contact_ids(client.get("/admin/contacts?page=9").text) == ids[50:]
    assert contact_ids(client.get("/admin/contacts?page=x").text) == ids[:50]
    searched = client.get("/admin/contacts?q=lead").text
    assert 'href="/admin/contacts?page=2&amp;q=lead"' in searched


def test_detail_shows_identities_and_the_timeline_newest_first(
    app, signed_in, followers, oa_channel
):
    name_contact(app, followers["o_li"], "Li Wei", account="Acme Robotics")
    page = in_english(signed_in("sales")).get(f"/admin/contacts/{followers['o_li']}")
    assert page.status_code == 200
    text = page.text
    assert "Li Wei" in text and "Acme Robotics" in text
    assert f"oa {OA_CREDS.app_id}" in text  # the identity's channel
    assert '<td class="mono">o_li</td>' in text and "badge ok" in text  # following
    timeline = text[text.index('class="timeline"') :]
    labels = ["Sent a message", "Tapped a menu", "Followed the account"]
    assert [timeline.index(label) for label in labels] == sorted(
        timeline.index(label) for label in labels
    )
    assert "报价多少?" in timeline and "MENU_PRICING" in timeline and "expo" in timeline
    assert "Menu key" in timeline and "Scene" in timeline and "Message" in timeline

    zhao = in_english(signed_in("viewer")).get(f"/admin/contacts/{followers['wm_zhao']}").text
    assert "Added a staff member on WeCom" in zhao and "sales_zhang" in zhao
    assert "external_userid" in zhao and "WELCOME_CODE_1" not in zhao


def test_another_workspace_never_sees_acme_contacts(app, client, signed_in, followers):
    # Other has its own OA, whose follower happens to have the same openid as Li.
    other_channel = make_channel(app, "oa", OA_CREDS, workspace="other")
    post_oa(client, other_channel, simulate.oa_event("o_li", "subscribe"))
    assert run_jobs(app)
    [own] = [i.contact_id for i in identities(app) if i.channel_id == other_channel]

    other = signed_in("owner", "other")
    for contact_id in followers.values():
        assert other.get(f"/admin/contacts/{contact_id}").status_code == 404
    assert contact_ids(other.get("/admin/contacts").text) == [own]
    assert contact_ids(other.get("/admin/contacts?q=o_li").text) == [own]
    assert contact_ids(other.get("/admin/contacts?q=wm_zhao").text) == []


def test_detail_shows_the_lead_score_points_and_stage(app, signed_in, followers):
    """Li's follow, menu tap and message, scored by the drain that recorded them."""
    li = followers["o_li"]
    text = in_english(signed_in("viewer")).get(f"/admin/contacts/{li}").text
    scoring = text[text.index('id="contact-scoring"') : text.index('id="stage-card"')]
    lead = float(re.search(r"data-lead-score>([\d.,]+)<", scoring).group(1))
    assert lead == pytest.approx(5 + 2 + 4, abs=0.1)  # minutes old: hardly decayed
    assert 'data-stage="aware">Aware<' in scoring and "Not yet" not in scoring
    ledger = text[text.index('id="ledger"') : text.index("<h2>Identities</h2>")]
    assert re.findall(r'data-rule="(\w+)"', ledger) == ["message", "menu_click", "follow"]
    assert "Sent a message" in ledger and "+5" in ledger and "<th>Contact</th>" not in ledger
    history = text[text.index('id="stage-card"') : text.index('id="ledger"')]
    assert "first interaction" in history and ">rule<" in history
    assert "Move stage" not in history  # a viewer may not


def test_sales_move_a_contacts_stage_with_a_reason(app, signed_in, followers):
    li = followers["o_li"]
    client = in_english(signed_in("sales"))
    token = csrf_token(client.get(f"/admin/contacts/{li}").text)

    def move(stage, reason):
        data = {"stage": stage, "reason": reason, "csrf_token": token}
        return client.post(f"/admin/contacts/{li}/stage", data=data)

    for stage, reason, message in (
        ("sql", "约了演示", "Not a valid choice."),
        ("meeting", "", "This field is required."),
    ):
        response = move(stage, reason)
        assert response.status_code == 200 and message in response.text
        assert 'class="timeline"' in response.text  # the whole page, with the error
    response = move("meeting", "约了演示")
    assert response.status_code == 302
    assert f"Moved #{li} to Meeting." in client.get(response.headers["Location"]).text
    with harpoon_of(app).db.session() as session:
        assert session.get(Contact, li).stage == "meeting"
        change = session.scalars(
            select(StageChange).where(
                StageChange.subject == "contact", StageChange.user_id.is_not(None)
            )
        ).one()
        log = session.scalars(select(AuditLog).where(AuditLog.action == "contact.stage")).one()
    assert (change.subject_id, change.from_stage, change.to_stage) == (li, "aware", "meeting")
    assert change.reason == "约了演示" and change.user_id == log.user_id
    assert log.changes["stage"] == ["aware", "meeting"]
