"""The webhooks page: owners and admins create and rotate the workspace's signing secret,
shown once on the answer and kept encrypted; the page tells receivers how to verify."""

import re

from sqlalchemy import text

from journeys.webhooks import signing_secrets
from models import AuditLog, WebhookSecret, utcnow
from tests.app.admin.conftest import csrf_token, in_english
from tests.app.admin.test_content import session_of
from tests.helpers import all_of


def shown_secret(page: str) -> str:
    match = re.search(r'value="(whsec_[^"]+)"', page)
    assert match, "no secret on the page"
    return match.group(1)


def test_the_secret_is_shown_once_and_kept_encrypted(app, signed_in):
    client = in_english(signed_in("owner"))
    assert "No signing secret yet" in client.get("/admin/webhooks").text

    response = client.post(
        "/admin/webhooks/secret",
        data={"csrf_token": csrf_token(client.get("/admin/webhooks").text)},
    )
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    secret = shown_secret(response.text)
    assert "Signing secret created" in response.text

    (row,) = all_of(app, WebhookSecret)
    assert row.prefix == secret[:10]
    with session_of(app) as session:
        stored = session.execute(text("SELECT * FROM webhook_secrets")).one()
        assert not any(secret in str(value) for value in stored)
        assert signing_secrets(session, row.workspace_id, utcnow()) == (secret,)

    listed = client.get("/admin/webhooks").text
    assert secret not in listed and f"{row.prefix}…" in listed
    (entry,) = all_of(app, AuditLog)
    assert entry.action == "webhook_secret.create" and secret not in str(entry.changes)


def test_rotating_shows_the_new_secret_and_keeps_the_old_one_signing_for_a_while(app, signed_in):
    client = in_english(signed_in("admin"))
    page = client.get("/admin/webhooks").text
    first = shown_secret(
        client.post("/admin/webhooks/secret", data={"csrf_token": csrf_token(page)}).text
    )
    page = client.get("/admin/webhooks").text
    assert "Rotate the signing secret?" in page  # asked to confirm

    response = client.post("/admin/webhooks/secret", data={"csrf_token": csrf_token(page)})
    second = shown_secret(response.text)
    assert second != first
    assert "Signing secret rotated" in response.text and "previous secret" in response.text
    (row,) = all_of(app, WebhookSecret)
    with session_of(app) as session:
        assert signing_secrets(session, row.workspace_id, utcnow()) == (second, first)
    actions = [entry.action for entry in all_of(app, AuditLog)]
    assert actions == ["webhook_secret.create", "webhook_secret.rotate"]


def test_only_owners_and_admins_manage_the_secret(app, signed_in):
    owner = signed_in("owner")
    assert 'href="/admin/webhooks"' in owner.get("/admin/").text
    for role in ("marketer", "sales", "viewer"):
        client = signed_in(role)
        assert client.get("/admin/webhooks").status_code == 403
        assert 'href="/admin/webhooks"' not in client.get("/admin/").text
        token = csrf_token(client.get("/admin/").text)
        assert client.post("/admin/webhooks/secret", data={"csrf_token": token}).status_code == 403
    assert all_of(app, WebhookSecret) == []


def test_each_workspace_rotates_only_its_own_secret(app, signed_in):
    acme, other = signed_in("owner"), signed_in("owner", workspace="other")
    for client in (acme, other):
        page = client.get("/admin/webhooks").text
        client.post("/admin/webhooks/secret", data={"csrf_token": csrf_token(page)})
    before = {row.workspace_id: row.secret for row in all_of(app, WebhookSecret)}
    page = other.get("/admin/webhooks").text
    other.post("/admin/webhooks/secret", data={"csrf_token": csrf_token(page)})
    after = {row.workspace_id: row.secret for row in all_of(app, WebhookSecret)}
    assert len(after) == 2
    assert sum(before[ws] != after[ws] for ws in after) == 1


def test_the_page_shows_the_headers_to_verify(app, signed_in):
    page = in_english(signed_in("owner")).get("/admin/webhooks").text
    assert "X-Harpoon-Workspace: " in page and "X-Harpoon-Delivery: " in page
    assert "X-Harpoon-Signature: t=&lt;unix&gt;,v1=" in page
    assert "a redirect is not followed" in page
