"""The API keys page: owners and admins only; a key and its signing secret shown once, on
the creation's answer, with only the key's hash stored; revoking; the usage example."""

import hashlib
import re

from sqlalchemy import text

from crm.api_keys import key_for
from models import ApiKey, AuditLog
from tests.app.admin.helpers import csrf_token, field_errors, in_english, post_form
from tests.helpers import all_of, session_of


def shown_key(page: str, prefix: str) -> str:
    match = re.search(rf'value="({prefix}[^"]+)"', page)
    assert match, f"no {prefix} value on the page"
    return match.group(1)


def test_a_new_key_is_shown_once_and_only_its_hash_is_kept(app, signed_in):
    client = in_english(signed_in("owner"))
    response = post_form(client, "/admin/api-keys", {"name": "直播平台", "require_signature": "1"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    key, secret = shown_key(response.text, "hk_"), shown_key(response.text, "hs_")
    assert "will not show either again" in response.text

    (row,) = all_of(app, ApiKey)
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert (row.name, row.prefix, row.require_signature) == ("直播平台", key[:10], True)
    with session_of(app) as session:
        stored = session.execute(text("SELECT * FROM api_keys")).one()
        assert not any(key in str(value) or secret in str(value) for value in stored)
        assert key_for(session, key).id == row.id

    listed = client.get("/admin/api-keys").text
    assert key not in listed and secret not in listed
    assert f"{row.prefix}…" in listed and "直播平台" in listed
    (entry,) = all_of(app, AuditLog)
    assert entry.action == "api_key.create"
    assert key not in str(entry.changes) and secret not in str(entry.changes)


def test_revoking_a_key_refuses_it_from_then_on(app, signed_in):
    client = in_english(signed_in("admin"))
    created = post_form(client, "/admin/api-keys", {"name": "CRM"})
    key = shown_key(created.text, "hk_")
    (row,) = all_of(app, ApiKey)
    assert row.require_signature is False
    page = client.get("/admin/api-keys").text
    assert 'data-confirm="Revoke the key “CRM”?' in page  # asked to confirm

    response = client.post(
        f"/admin/api-keys/{row.id}/revoke", data={"csrf_token": csrf_token(page)}
    )
    assert response.status_code == 302
    with session_of(app) as session:
        assert key_for(session, key) is None
    page = client.get("/admin/api-keys").text
    assert "Key “CRM” revoked" in page and "Revoked " in page
    assert f'action="/admin/api-keys/{row.id}/revoke"' not in page
    assert [entry.action for entry in all_of(app, AuditLog)] == ["api_key.create", "api_key.revoke"]


def test_a_key_needs_a_name(app, signed_in):
    client = in_english(signed_in("owner"))
    response = post_form(client, "/admin/api-keys", {"name": " "})
    assert response.status_code == 400
    assert field_errors(response.text, "name") == ["Required."]
    response = post_form(client, "/admin/api-keys", {"name": "名" * 101})
    assert field_errors(response.text, "name") == ["1 to 100 characters."]
    assert all_of(app, ApiKey) == []


def test_only_owners_and_admins_manage_keys(app, signed_in):
    owner = signed_in("owner")
    post_form(owner, "/admin/api-keys", {"name": "CRM"})
    (row,) = all_of(app, ApiKey)
    for role in ("marketer", "sales", "viewer"):
        client = signed_in(role)
        assert client.get("/admin/api-keys").status_code == 403
        assert 'href="/admin/api-keys"' not in client.get("/admin/").text
        token = csrf_token(client.get("/admin/").text)
        assert (
            client.post("/admin/api-keys", data={"name": "x", "csrf_token": token}).status_code
            == 403
        )
        revoke = client.post(f"/admin/api-keys/{row.id}/revoke", data={"csrf_token": token})
        assert revoke.status_code == 403
    assert 'href="/admin/api-keys"' in owner.get("/admin/").text
    other = signed_in("admin", workspace="other")
    token = csrf_token(other.get("/admin/").text)
    assert (
        other.post(f"/admin/api-keys/{row.id}/revoke", data={"csrf_token": token}).status_code
        == 404
    )
    assert f'id="key-{row.id}"' not in other.get("/admin/api-keys").text


def test_the_page_shows_how_to_post_and_sign(app, signed_in):
    page = in_english(signed_in("owner")).get("/admin/api-keys").text
    assert "curl -X POST http://127.0.0.1:8000/api/v1/touchpoints" in page
    assert "Authorization: Bearer &lt;key&gt;" in page
    assert '"kind": "live.watch"' in page.replace("&#34;", '"')
    assert "X-Harpoon-Signature: t=&lt;unix&gt;,v1=" in page
    assert 'href="http://127.0.0.1:8000/api/v1/openapi.json"' in page
    assert "up to 1000 touchpoints" in page
