"""Security headers on every kind of response: admin pages, readers' pages, the API and
WeChat's callbacks; HSTS only when Harpoon is served over HTTPS."""

import pytest

from app.security import PAGE_POLICY, READER_POLICY, RESOURCE_POLICY, policy_header
from crm.channels import workspace_named
from models import Content, ContentKind
from outreach.content import create_link
from tests.app.admin.helpers import sign_in
from tests.factories import make_user
from tests.helpers import harpoon_of, post_oa
from wechat import simulate

BROWSER = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Chrome/130.0"}


def hosted_page_link(app) -> str:
    """A page Harpoon hosts, behind its tracked link; returns the link's path."""
    with harpoon_of(app).db.session() as session:
        workspace = workspace_named(session, "acme")
        content = Content(
            workspace_id=workspace.id, kind=ContentKind.PAGE, title="白皮书", body="正文"
        )
        session.add(content)
        session.flush()
        link = create_link(session, workspace.id, content_id=content.id)
        session.commit()
        return f"/t/{link.code}"


def assert_common_headers(response, referrer: str) -> None:
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == referrer
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "Strict-Transport-Security" not in response.headers


def test_admin_pages_run_only_harpoons_own_scripts(app):
    make_user(app, "owner")
    client = app.test_client()
    login = client.get("/admin/login")
    assert sign_in(client, "owner@acme.example").status_code == 302
    dashboard = client.get("/admin/")
    for page in (login, dashboard):
        assert page.status_code == 200 and page.mimetype == "text/html"
        assert page.headers["Content-Security-Policy"] == policy_header(PAGE_POLICY)
        assert_common_headers(page, "same-origin")
    assert "script-src 'self';" in dashboard.headers["Content-Security-Policy"]
    assert "<script>" not in dashboard.text and "onchange=" not in dashboard.text


def test_a_readers_page_shows_https_images_from_elsewhere(app):
    client = app.test_client()
    opened = client.get(hosted_page_link(app), headers=BROWSER)
    assert opened.status_code == 302
    page = client.get(opened.location, headers=BROWSER)
    assert page.status_code == 200 and "白皮书" in page.text
    policy = page.headers["Content-Security-Policy"]
    assert policy == policy_header(READER_POLICY)
    assert "img-src 'self' data: https:;" in policy and "script-src 'self';" in policy
    assert_common_headers(page, "strict-origin-when-cross-origin")


def test_api_answers_load_nothing(app):
    refused = app.test_client().post("/api/v1/touchpoints", json={})
    assert refused.status_code == 401 and refused.mimetype == "application/json"
    assert refused.headers["Content-Security-Policy"] == policy_header(RESOURCE_POLICY)
    assert_common_headers(refused, "same-origin")


def test_callback_answers_carry_the_headers_too(app, oa_channel):
    answer = post_oa(app.test_client(), oa_channel, simulate.oa_event("o_headers", "subscribe"))
    assert answer.headers["Content-Security-Policy"] == policy_header(RESOURCE_POLICY)
    assert_common_headers(answer, "same-origin")


@pytest.mark.parametrize(
    ("base_url", "hsts"),
    [("https://harpoon.example.com", "max-age=31536000"), ("http://127.0.0.1:8000", None)],
)
def test_hsts_only_when_served_over_https(make_app, base_url, hsts):
    app = make_app(public_base_url=base_url)
    for path in ("/admin/login", "/api/v1/openapi.json", "/healthz"):
        assert app.test_client().get(path).headers.get("Strict-Transport-Security") == hsts


def test_against_the_sandbox_a_readers_page_may_show_its_pictures(make_app):
    sandboxed = make_app(wechat_api_url="http://127.0.0.1:8100")
    policy = sandboxed.test_client().get(hosted_page_link(sandboxed), headers=BROWSER)
    page = sandboxed.test_client().get(policy.location, headers=BROWSER)
    header = page.headers["Content-Security-Policy"]
    assert "img-src 'self' data: https: http://127.0.0.1:8100;" in header
    assert "script-src 'self';" in header
