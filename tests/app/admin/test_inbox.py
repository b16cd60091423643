"""Inbox page: status tabs, payload view, the operator's retry, roles and workspaces."""

import re

import pytest
from sqlalchemy import select

from crm.channels import workspace_named
from crm.touchpoints import api_row
from models import AuditLog, InboundEvent, User, utcnow
from tests.app.admin.helpers import csrf_token, in_english
from tests.factories import make_channel
from tests.helpers import OA_CREDS, harpoon_of, inbox, post_oa, run_jobs
from wechat import simulate

# Menu clicks fail in their handler here: the failed rows this page lists and retries.
pytestmark = pytest.mark.usefixtures("failing_clicks")


def bad_click(app, client, channel_id):
    """A real callback whose handler fails."""
    post_oa(client, channel_id, simulate.oa_event("o_click", "CLICK", EventKey="K"))
    run_jobs(app)
    [row] = [r for r in inbox(app) if r.channel_id == channel_id and r.status == "failed"]
    return row


def event(app, event_id):
    with harpoon_of(app).db.session() as session:
        return session.get(InboundEvent, event_id)


def row_ids(html):
    return [int(n) for n in re.findall(r'<tr id="inbox-event-(\d+)"', html)]


def retry(client, event_id, **headers):
    token = csrf_token(client.get("/admin/inbox").text)
    return client.post(
        f"/admin/inbox/{event_id}/retry",
        data={"csrf_token": token, "next": "/admin/inbox?status=failed"},
        headers=headers,
    )


def test_lists_the_failed_row_of_a_bad_callback(app, client, oa_channel, signed_in):
    failed = bad_click(app, client, oa_channel)
    page = signed_in("admin").get("/admin/inbox")
    assert page.status_code == 200
    assert row_ids(page.text) == [failed.id]
    assert 'data-status="failed"' in page.text
    assert "click of o_click failed in its handler" in page.text
    assert f"oa {OA_CREDS.app_id}" in page.text  # the channel's name
    assert failed.dedupe_key in page.text
    assert "wechat.menu_click" in page.text
    assert "<details><summary>" in page.text


def test_status_tabs_filter_and_count(app, client, oa_channel, signed_in):
    post_oa(client, oa_channel, simulate.oa_event("o_1", "subscribe"))
    failed = bad_click(app, client, oa_channel)
    [done] = [r for r in inbox(app) if r.status == "done"]
    admin = signed_in("admin")

    attention = admin.get("/admin/inbox").text
    assert row_ids(attention) == [failed.id]
    assert 'data-count="done">1<' in attention and 'data-count="failed">1<' in attention
    assert row_ids(admin.get("/admin/inbox?status=failed").text) == [failed.id]
    assert row_ids(admin.get("/admin/inbox?status=done").text) == [done.id]
    assert row_ids(admin.get("/admin/inbox?status=dead").text) == []
    assert row_ids(admin.get("/admin/inbox?status=all").text) == [failed.id, done.id]
    # An unknown status is the default view, not an error.
    assert row_ids(admin.get("/admin/inbox?status=bogus").text) == [failed.id]


def test_pages_of_fifty_newest_first_with_the_oldest_pending_age(app, signed_in):
    channel_id = make_channel(app, "oa", OA_CREDS)
    with harpoon_of(app).db.session() as session:
        ws = workspace_named(session, "acme").id
        for n in range(51):
            session.add(
                InboundEvent(
                    workspace_id=ws,
                    channel_id=channel_id,
                    platform="oa",
                    dedupe_key=f"key-{n}",
                    payload="<xml></xml>",
                    received_at=utcnow(),
                )
            )
        session.commit()
    ids = [r.id for r in inbox(app)]
    admin = in_english(signed_in("admin"))
    first = admin.get("/admin/inbox")
    assert row_ids(first.text) == ids[::-1][:50]
    assert "Page 1 of 2" in first.text and "Oldest pending:" in first.text
    assert row_ids(admin.get("/admin/inbox?page=2").text) == [ids[0]]


def test_payload_page_shows_the_xml_escaped(app, client, oa_channel, signed_in):
    post_oa(client, oa_channel, simulate.oa_text("o_1", "<script>alert(1)</script>", 7001))
    run_jobs(app)
    [row] = inbox(app)
    page = signed_in("marketer").get(f"/admin/inbox/{row.id}")
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text  # the Content field
    # The XML itself, indented, CDATA kept, every tag escaped.
    assert "&lt;Content&gt;&lt;![CDATA[&lt;script&gt;alert(1)&lt;/script&gt;]]&gt;" in page.text
    assert "\n  &lt;MsgType&gt;" in page.text
    assert "<Content>" not in page.text
    assert row.dedupe_key in page.text


def test_retry_puts_the_event_back_in_line_and_audits_it(app, client, oa_channel, signed_in):
    failed = bad_click(app, client, oa_channel)
    assert failed.attempts == 1
    admin = in_english(signed_in("admin"))

    response = retry(admin, failed.id)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/inbox?status=failed"
    assert "Queued for retry." in admin.get(response.headers["Location"]).text
    row = event(app, failed.id)
    assert (row.status, row.attempts) == ("pending", 0)

    with harpoon_of(app).db.session() as session:
        [entry] = session.scalars(select(AuditLog))
        admin_user = session.scalar(select(User).where(User.email == "admin@acme.example"))
    assert (entry.action, entry.target_type, entry.target_id) == (
        "inbox.retry",
        "inbound_event",
        str(failed.id),
    )
    assert entry.user_id == admin_user.id and entry.workspace_id == failed.workspace_id
    assert entry.changes["status"] == "failed" and entry.changes["attempts"] == 1

    # The retry asked for a drain: the job runs, the handler fails again, attempts count up.
    assert run_jobs(app) is True
    row = event(app, failed.id)
    assert (row.status, row.attempts) == ("failed", 1)


def test_retry_with_htmx_swaps_the_row(app, client, oa_channel, signed_in):
    failed = bad_click(app, client, oa_channel)
    admin = in_english(signed_in("admin"))
    response = retry(admin, failed.id, **{"HX-Request": "true"})
    assert response.status_code == 200
    assert response.text.lstrip().startswith(f'<tr id="inbox-event-{failed.id}"')
    assert 'data-status="pending"' in response.text
    assert "Queued for retry." in response.text
    assert 'data-action="retry"' not in response.text  # pending: nothing to retry


def test_the_list_offers_htmx_with_a_form_fallback(app, client, oa_channel, signed_in):
    failed = bad_click(app, client, oa_channel)
    page = signed_in("admin").get("/admin/inbox").text
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*hx-post="([^"]+)"', page)
    assert form and form.group(1) == form.group(2) == f"/admin/inbox/{failed.id}/retry"
    assert 'hx-target="closest tr"' in page and 'name="csrf_token"' in page


def test_retrying_an_event_that_did_not_fail_changes_nothing(app, client, oa_channel, signed_in):
    post_oa(client, oa_channel, simulate.oa_event("o_1", "subscribe"))
    run_jobs(app)
    [done] = inbox(app)
    admin = in_english(signed_in("admin"))
    response = retry(admin, done.id)
    assert "Only a failed or dead event can be retried." in admin.get(response.location).text
    assert event(app, done.id).status == "done"
    with harpoon_of(app).db.session() as session:
        assert session.scalars(select(AuditLog)).all() == []


def test_a_redirect_after_retry_stays_on_the_inbox(app, client, oa_channel, signed_in):
    failed = bad_click(app, client, oa_channel)
    admin = signed_in("admin")
    token = csrf_token(admin.get("/admin/inbox").text)
    response = admin.post(
        f"/admin/inbox/{failed.id}/retry",
        data={"csrf_token": token, "next": "//evil.example/admin/inbox"},
    )
    assert response.headers["Location"] == "/admin/inbox"


def test_marketer_sees_the_inbox_but_may_not_retry(app, client, oa_channel, signed_in):
    failed = bad_click(app, client, oa_channel)
    marketer = signed_in("marketer")
    page = marketer.get("/admin/inbox")
    assert page.status_code == 200 and row_ids(page.text) == [failed.id]
    assert 'data-action="retry"' not in page.text
    assert 'data-action="retry"' not in marketer.get(f"/admin/inbox/{failed.id}").text
    assert retry(marketer, failed.id).status_code == 403
    assert event(app, failed.id).status == "failed"


def test_sales_and_viewers_may_not_open_the_inbox(app, client, oa_channel, signed_in):
    failed = bad_click(app, client, oa_channel)
    for role in ("sales", "viewer"):
        user = signed_in(role)
        assert user.get("/admin/inbox").status_code == 403
        assert user.get(f"/admin/inbox/{failed.id}").status_code == 403


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get("/admin/inbox")
    assert response.status_code == 302 and "/admin/login" in response.headers["Location"]


def test_another_workspaces_event_is_not_found(app, client, oa_channel, signed_in):
    theirs = make_channel(
        app, "oa", OA_CREDS, workspace="globex", message_mode="safe", account_type="service"
    )
    other = bad_click(app, client, theirs)
    admin = signed_in("admin")  # of acme
    assert other.id not in row_ids(admin.get("/admin/inbox?status=all").text)
    assert 'data-count="failed">0<' in admin.get("/admin/inbox").text
    assert admin.get(f"/admin/inbox/{other.id}").status_code == 404
    assert retry(admin, other.id).status_code == 404
    assert event(app, other.id).status == "failed"
    assert signed_in("admin", "globex").get(f"/admin/inbox/{other.id}").status_code == 200


def test_a_touchpoint_without_a_channel_is_listed_with_its_source_and_json(app, signed_in):
    """The touchpoint API's rows name no channel; a failed one is listed and readable."""
    with harpoon_of(app).db.session() as session:
        ws = workspace_named(session, "acme")
        row = api_row(ws.id, {"kind": "email.open", "email": "a@b.cn"}, utcnow(), lanes=4)
        event = InboundEvent(**row, next_attempt_at=utcnow())
        event.status, event.last_error = "failed", "ValueError: boom"
        session.add(event)
        session.commit()
        event_id = event.id
    client = signed_in("admin")
    listing = client.get("/admin/inbox")
    assert listing.status_code == 200 and event_id in row_ids(listing.text)
    detail = client.get(f"/admin/inbox/{event_id}")
    assert detail.status_code == 200
    assert "email.open" in detail.text and "a@b.cn" in detail.text
