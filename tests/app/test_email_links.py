"""The public addresses of an email: the open pixel, tracked clicks and the one-click
unsubscribe. Each records once as the contact's interaction through the inbox and the
drain; a forged signature, a made-up token or junk never gives a 500 nor a redirect."""

from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from app.email_links import PIXEL
from models import (
    EmailMessage,
    EmailSuppression,
    InboundEvent,
    Interaction,
    ScoreEntry,
    SuppressionReason,
)
from outreach.emails import Tracking
from tests.factories import add_identity, make_contact, make_email_message
from tests.helpers import all_of, harpoon_of, load, run_jobs, session_of

TO = "Wang.Wei@Huaxin.example"


@pytest.fixture
def sent(app):
    contact = make_contact(app, "王伟")
    add_identity(app, contact, "email", TO.lower())
    return make_email_message(app, contact, TO, subject="新品发布会邀请")


def tracking(app, message) -> Tracking:
    settings = harpoon_of(app).settings
    return Tracking(settings.public_base_url, settings.secret_key, message.token)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def interactions(app, kind=None):
    rows = all_of(app, Interaction)
    return [row for row in rows if kind is None or row.kind == kind]


def test_opening_twice_counts_twice_and_is_one_interaction(app, client, sent):
    for _ in range(2):
        answer = client.get(f"/e/{sent.token}/o.gif")
        assert answer.status_code == 200 and answer.mimetype == "image/gif"
        assert answer.data == PIXEL
        assert "no-store" in answer.headers["Cache-Control"]
    row = load(app, EmailMessage, sent.id)
    assert row.open_count == 2 and row.opened_at is not None
    run_jobs(app)

    [opened] = interactions(app)
    assert (opened.kind, opened.contact_id) == ("email.open", sent.contact_id)
    assert opened.properties["subject"] == "新品发布会邀请"
    assert opened.properties["email_id"] == sent.id
    [entry] = all_of(app, ScoreEntry)
    assert entry.rule_key == "email_open"


def test_an_unknown_token_still_gets_the_gif_and_nothing_is_stored(app, client, sent):
    for token in ("nobody-at-all-here", "x", "é" * 40, "%00", "a" * 300, "../../etc"):
        answer = client.get(f"/e/{token}/o.gif")
        assert answer.status_code in (200, 400, 404)
        if answer.status_code == 200:
            assert answer.data == PIXEL
    assert client.get("/e/nobody-at-all-here/o.gif").data == PIXEL
    assert all_of(app, InboundEvent) == []
    assert load(app, EmailMessage, sent.id).open_count == 0


def test_a_signed_click_is_recorded_once_and_redirects(app, client, sent):
    url = "https://huaxin.example/launch?utm=mail&x=1"
    click = path_of(tracking(app, sent).click_url(url))
    for _ in range(2):
        answer = client.get(click)
        assert answer.status_code == 302 and answer.headers["Location"] == url
    other = client.get(path_of(tracking(app, sent).click_url("https://huaxin.example/other")))
    assert other.status_code == 302
    row = load(app, EmailMessage, sent.id)
    assert row.click_count == 3 and row.clicked_at is not None
    assert row.opened_at is not None  # a click proves the opening the pixel missed
    run_jobs(app)

    clicks = interactions(app, "email.click")
    assert sorted(c.properties["url"] for c in clicks) == [
        "https://huaxin.example/launch?utm=mail&x=1",
        "https://huaxin.example/other",
    ]
    assert {c.contact_id for c in clicks} == {sent.contact_id}
    assert {e.rule_key for e in all_of(app, ScoreEntry)} == {"email_click"}


@pytest.mark.parametrize(
    "query",
    [
        "",
        "u=https://evil.example/",
        "u=https://evil.example/&s=",
        "u=https://evil.example/&s=0123456789abcdef0123",
        "u=javascript:alert(1)&s=abc",
        "s=abc",
        "u=%FF%FE&s=%FF",
        "u=" + "a" * 5000 + "&s=x",
        "u=https://evil.example/&u=https://x.example/&s=1&s=2",
    ],
)
def test_an_unsigned_or_forged_click_is_a_400_page_and_no_redirect(app, client, sent, query):
    answer = client.get(f"/e/{sent.token}/c?{query}")
    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert load(app, EmailMessage, sent.id).click_count == 0
    assert all_of(app, InboundEvent) == []


def test_a_signature_is_bound_to_its_message(app, client, sent):
    other = make_email_message(app, sent.contact_id, TO)
    signed_for_other = tracking(app, other).click_url("https://huaxin.example/")
    query = urlsplit(signed_for_other).query
    assert client.get(f"/e/{sent.token}/c?{query}").status_code == 400
    assert client.get(f"/e/{other.token}/c?{query}").status_code == 302


def test_a_signed_click_of_a_message_gone_still_leads_on(app, client, sent):
    url = "https://huaxin.example/"
    gone = Tracking(tracking(app, sent).base_url, tracking(app, sent).secret, "gone-token-123")
    answer = client.get(path_of(gone.click_url(url)))
    assert answer.status_code == 302 and answer.headers["Location"] == url
    assert all_of(app, InboundEvent) == []


def test_the_unsubscribe_page_asks_then_one_click_post_suppresses(app, client, sent):
    page = client.get(f"/e/{sent.token}/u")
    assert page.status_code == 200
    assert "退订" in page.text and "w***@huaxin.example" in page.text
    assert TO not in page.text and TO.lower() not in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text

    # RFC 8058: the mail client POSTs this body, with no cookie and no CSRF token.
    fresh = app.test_client()
    for _ in range(2):
        done = fresh.post(
            f"/e/{sent.token}/u",
            data="List-Unsubscribe=One-Click",
            content_type="application/x-www-form-urlencoded",
        )
        assert done.status_code == 200 and "不会再收到" in done.text
    [row] = all_of(app, EmailSuppression, EmailSuppression.address)
    assert (row.address, row.reason, row.message_id) == (
        TO.lower(),
        SuppressionReason.UNSUBSCRIBED,
        sent.id,
    )
    assert "不会再收到" in client.get(f"/e/{sent.token}/u").text  # already done
    run_jobs(app)
    [left] = interactions(app)
    assert (left.kind, left.contact_id) == ("email.unsubscribe", sent.contact_id)
    assert all_of(app, ScoreEntry)[0].points < 0


def test_unsubscribing_with_a_bogus_token_is_a_404_and_stores_nothing(app, client, sent):
    for token in ("nobody-at-all-here", "z" * 200, "a%2Fb"):
        assert client.get(f"/e/{token}/u").status_code == 404
        assert (
            client.post(f"/e/{token}/u", data={"List-Unsubscribe": "One-Click"}).status_code == 404
        )
    assert (
        all_of(app, EmailSuppression, EmailSuppression.address) == []
        and all_of(app, InboundEvent) == []
    )


def test_the_touchpoints_are_the_messages_contact_even_when_the_address_moved(app, client, sent):
    """The message names its contact: another contact holding the address now does not
    receive the open."""
    someone = make_contact(app, "李娜")
    with session_of(app) as session:
        assert session.scalar(select(func.count()).select_from(InboundEvent)) == 0
    add_identity(app, someone, "email", "other@huaxin.example")
    client.get(f"/e/{sent.token}/o.gif")
    run_jobs(app)
    assert [i.contact_id for i in interactions(app)] == [sent.contact_id]


def test_the_click_url_carries_what_tracking_signs(app, sent):
    url = tracking(app, sent).click_url("https://huaxin.example/?a=1&b=2")
    query = parse_qs(urlsplit(url).query)
    assert query["u"] == ["https://huaxin.example/?a=1&b=2"] and len(query["s"][0]) == 20


def test_the_contacts_timeline_shows_the_email_opened_with_its_subject(
    app, client, sent, signed_in
):
    from tests.app.admin.helpers import in_english

    client.get(f"/e/{sent.token}/o.gif")
    run_jobs(app)
    page = in_english(signed_in("marketer")).get(f"/admin/contacts/{sent.contact_id}").text
    assert "Opened an email" in page
    assert "Subject:</span> 新品发布会邀请" in page
