"""Fixtures of the web layer's tests: signed-in clients (CSRF on, as in production), for the
admin and the WeCom sidebar's panel alike."""

import pytest

from tests.app.admin.helpers import sign_in
from tests.factories import make_user


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
