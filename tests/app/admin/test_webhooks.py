"""The webhooks page: owners and admins create and rotate the workspace's signing secret,
shown once on the answer and kept encrypted; the page tells receivers how to verify."""

import re

from sqlalchemy import text

from journeys import webhooks
from journeys.webhooks import rotate_secret, signing_secrets
from models import AuditLog, WebhookSecret, Workspace, utcnow
from tests.app.admin.helpers import csrf_token, in_english
from tests.helpers import all_of, session_of


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


def rotate(client) -> str:
    page = client.get("/admin/webhooks").text
    return client.post("/admin/webhooks/secret", data={"csrf_token": csrf_token(page)}).text


def test_rotating_again_during_the_grace_ends_it_and_says_so(app, signed_in):
    client = in_english(signed_in("owner"))
    first = shown_secret(rotate(client))
    second = shown_secret(rotate(client))
    page = client.get("/admin/webhooks").text
    assert "The previous secret also signs until " in page
    assert 'data-confirm="Rotate the signing secret again? The previous secret stops signing' in (
        page
    )

    answer = rotate(client)  # a leaked secret must be replaceable at once
    third = shown_secret(answer)
    assert "no longer signs: this rotation ended its grace" in answer
    (row,) = all_of(app, WebhookSecret)
    with session_of(app) as session:
        assert signing_secrets(session, row.workspace_id, utcnow()) == (third, second)
    assert first not in (row.secret, row.previous_secret)


def test_a_first_secret_created_meanwhile_by_another_request_is_kept(app, signed_in, monkeypatch):
    client = in_english(signed_in("owner"))
    page = client.get("/admin/webhooks").text
    with session_of(app) as session:  # the other request, committed after ours looked
        workspace_id = session.execute(text("SELECT id FROM workspaces")).scalar_one()
        theirs = rotate_secret(session, workspace_id).secret
        session.commit()
    monkeypatch.setattr(webhooks, "secret_of", lambda session, workspace_id: None)

    response = client.post("/admin/webhooks/secret", data={"csrf_token": csrf_token(page)})

    assert response.status_code == 302
    monkeypatch.undo()
    shown = client.get(response.headers["Location"]).text
    assert "Another request created the signing secret a moment ago" in shown
    assert theirs not in shown  # shown once, to the request that made it
    (row,) = all_of(app, WebhookSecret)
    assert row.secret == theirs
    assert all_of(app, AuditLog) == []


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


def test_the_crm_webhook_address_is_set_checked_and_cleared_with_an_audit(app, signed_in):
    client = in_english(signed_in("owner"))
    page = client.get("/admin/webhooks").text
    assert "CRM webhook" in page
    token = csrf_token(page)

    for bad, message in (
        ("ftp://crm.example.com/x", "An http(s) address of at most 1024 characters."),
        ("http://10.0.0.7/hook", "A private or local address: only public addresses can be"),
        ("https://crm.example.com/" + "x" * 500, "An address of at most 500 characters."),
    ):
        refused = client.post(
            "/admin/webhooks/crm", data={"crm_webhook_url": bad, "csrf_token": token}
        )
        assert refused.status_code == 400
        assert message in refused.text and 'role="alert"' in refused.text
    assert all_of(app, Workspace)[0].crm_webhook_url is None
    assert not all_of(app, AuditLog)

    url = "https://crm.example.com/harpoon?token=a&b=1"
    saved = client.post("/admin/webhooks/crm", data={"crm_webhook_url": url, "csrf_token": token})
    assert saved.status_code == 302
    (workspace,) = all_of(app, Workspace)
    assert workspace.crm_webhook_url == url
    page = client.get("/admin/webhooks").text
    assert 'value="https://crm.example.com/harpoon?token=a&amp;b=1"' in page
    assert "the CRM is not told until you create one" in page  # no signing secret yet

    client.post("/admin/webhooks/crm", data={"crm_webhook_url": " ", "csrf_token": token})
    assert all_of(app, Workspace)[0].crm_webhook_url is None
    assert [(e.action, e.changes["crm_webhook_url"]) for e in all_of(app, AuditLog)] == [
        ("crm_webhook.set", [None, url]),
        ("crm_webhook.clear", [url, None]),
    ]


def test_only_owners_and_admins_set_the_crm_webhook(app, signed_in):
    for role in ("marketer", "sales"):
        client = signed_in(role)
        token = csrf_token(client.get("/admin/").text)
        answer = client.post(
            "/admin/webhooks/crm",
            data={"crm_webhook_url": "https://crm.example.com/x", "csrf_token": token},
        )
        assert answer.status_code == 403
    assert all_of(app, Workspace)[0].crm_webhook_url is None


def test_the_crm_webhook_field_reads_in_chinese(app, signed_in):
    page = signed_in("admin").get("/admin/webhooks").text
    assert "CRM 回调地址" in page and "账户达到 MQA 或被分配给销售时" in page
