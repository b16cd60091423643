"""Admin test helpers: users per role, signed-in clients (CSRF on, as in production)."""

import re

import pytest

from crm.channels import workspace_named
from crm.users import create_user
from tests.conftest import harpoon_of

PASSWORD = "correct horse battery"


def make_user(app, role="marketer", workspace="acme", email=None):
    with harpoon_of(app).db.session() as session:
        user = create_user(
            session,
            workspace_named(session, workspace),
            email or f"{role}@{workspace}.example",
            f"{role.title()} User",
            PASSWORD,
            role,
        )
        session.commit()
        return user.id


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def sign_in(client, email, password=PASSWORD):
    page = client.get("/admin/login")
    return client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf_token": csrf_token(page.text)},
    )


@pytest.fixture
def signed_in(app):
    """signed_in(role, workspace) -> a test client signed in as a new user of that role."""

    def make(role="marketer", workspace="acme"):
        client = app.test_client()
        make_user(app, role, workspace)
        response = sign_in(client, f"{role}@{workspace}.example")
        assert response.status_code == 302, response.text
        return client

    return make


def post_form(client, path, data):
    """POST a form the way the browser does: with the CSRF token from the page."""
    page = client.get(path)
    return client.post(path, data={**data, "csrf_token": csrf_token(page.text)})


def in_english(client):
    """Switch the signed-in user's pages to English (zh_CN is the default)."""
    token = csrf_token(client.get("/admin/").text)
    client.post("/admin/locale", data={"locale": "en", "next": "/admin/", "csrf_token": token})
    return client
