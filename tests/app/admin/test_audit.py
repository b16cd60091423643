"""Audit page: entries newest first, who did it, the action filter, roles and workspaces."""

import re

from crm.channels import workspace_named
from models import AuditLog
from tests.app.admin.helpers import csrf_token, in_english
from tests.helpers import harpoon_of, post_oa, run_jobs
from wechat import simulate


def record(app, action, *, workspace="acme", target_id="1", changes=None):
    """An audit row as a page or job would write it; no user means the system did it."""
    with harpoon_of(app).db.session() as session:
        session.add(
            AuditLog(
                workspace_id=workspace_named(session, workspace).id,
                user_id=None,
                action=action,
                target_type="channel",
                target_id=target_id,
                changes=changes or {},
            )
        )
        session.commit()


def actions_listed(html):
    return re.findall(r'<tr data-action="([^"]+)"', html)


def options(html):
    return re.findall(r'<option value="([^"]+)"', html.split('id="audit-action"')[1])


def test_a_retry_appears_with_who_did_it(app, client, oa_channel, signed_in, failing_clicks):
    post_oa(client, oa_channel, simulate.oa_event("o_click", "CLICK", EventKey="K"))
    run_jobs(app)
    admin = signed_in("admin")
    page = admin.get("/admin/inbox").text
    [event_id] = re.findall(r'<tr id="inbox-event-(\d+)"', page)
    admin.post(f"/admin/inbox/{event_id}/retry", data={"csrf_token": csrf_token(page)})

    audit = admin.get("/admin/audit")
    assert audit.status_code == 200
    assert actions_listed(audit.text) == ["inbox.retry"]
    assert "Admin User" in audit.text and "admin@acme.example" in audit.text
    assert f"inbound_event</span> #{event_id}" in audit.text
    # Values in JSON: a string keeps its quotes (escaped for HTML), a number does not.
    assert 'status:</span> <span class="mono">&#34;failed&#34;</span>' in audit.text
    assert 'attempts:</span> <span class="mono">1</span>' in audit.text


def test_newest_first_system_entries_and_escaped_values(app, signed_in):
    record(app, "channel.create", target_id="1")
    record(app, "channel.update", target_id="2", changes={"name": "<b>Acme</b>", "tags": [1, 2]})
    page = in_english(signed_in("admin")).get("/admin/audit").text
    assert actions_listed(page) == ["channel.update", "channel.create"]
    assert "system" in page
    assert "<b>Acme</b>" not in page
    assert "&#34;&lt;b&gt;Acme&lt;/b&gt;&#34;" in page and "[1, 2]" in page


def test_filter_by_action(app, signed_in):
    record(app, "channel.create")
    record(app, "inbox.retry")
    record(app, "channel.create")
    admin = signed_in("admin")
    page = admin.get("/admin/audit").text
    assert options(page) == ["channel.create", "inbox.retry"]
    assert len(actions_listed(page)) == 3
    filtered = admin.get("/admin/audit?action=channel.create").text
    assert actions_listed(filtered) == ["channel.create", "channel.create"]
    assert '<option value="channel.create" selected>' in filtered
    assert actions_listed(admin.get("/admin/audit?action=no.such").text) == []


def test_pages_of_fifty(app, signed_in):
    for n in range(51):
        record(app, "channel.update", target_id=str(n))
    admin = signed_in("admin")
    first = admin.get("/admin/audit?action=channel.update").text
    assert len(actions_listed(first)) == 50
    assert "#50<" in first and "#0<" not in first
    assert 'href="/admin/audit?page=2&amp;action=channel.update"' in first
    assert "#0<" in admin.get("/admin/audit?action=channel.update&page=2").text


def test_only_owners_and_admins_may_read_it(signed_in):
    for role in ("marketer", "sales", "viewer"):
        assert signed_in(role).get("/admin/audit").status_code == 403
    for role in ("owner", "admin"):
        assert signed_in(role).get("/admin/audit").status_code == 200


def test_another_workspaces_entries_are_not_shown(app, signed_in):
    record(app, "channel.create")
    record(app, "channel.delete", workspace="globex")
    page = signed_in("admin").get("/admin/audit").text
    assert actions_listed(page) == ["channel.create"]
    assert options(page) == ["channel.create"]
    theirs = signed_in("admin", "globex").get("/admin/audit").text
    assert actions_listed(theirs) == ["channel.delete"]
