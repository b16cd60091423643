"""Sign-in, roles, CSRF, rate limiting, language, vendor assets."""

from tests.app.admin.conftest import PASSWORD, csrf_token, make_user, sign_in


def test_pages_need_sign_in(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login" in response.headers["Location"]


def test_wrong_password_shows_a_message(app, client):
    make_user(app, "marketer")
    response = sign_in(client, "marketer@acme.example", "wrong password!")
    assert response.status_code == 200
    assert "Wrong email or password." in response.text or "邮箱或密码错误" in response.text


def test_sign_in_and_out(app, client):
    make_user(app, "marketer")
    assert sign_in(client, "MARKETER@acme.example", PASSWORD).status_code == 302
    assert client.get("/admin/").status_code == 200
    token = csrf_token(client.get("/admin/").text)
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/admin/").status_code == 302


def test_forms_without_csrf_token_are_refused(app, client):
    make_user(app, "marketer")
    response = client.post(
        "/admin/login", data={"email": "marketer@acme.example", "password": PASSWORD}
    )
    assert response.status_code == 400  # CSRF token missing
    assert client.get("/admin/").status_code == 302


def test_login_is_rate_limited(make_app):
    app = make_app(login_rate_limit="3 per minute")
    client = app.test_client()
    make_user(app, "marketer")
    codes = [sign_in(client, "marketer@acme.example", "nope-nope").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_session_cookie_flags(app, client):
    make_user(app, "marketer")
    response = sign_in(client, "marketer@acme.example")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_language_switch_is_kept_per_user(app, signed_in):
    client = signed_in("marketer")
    page = client.get("/admin/")
    token = csrf_token(page.text)
    client.post("/admin/locale", data={"locale": "en", "next": "/admin/", "csrf_token": token})
    assert 'lang="en"' in client.get("/admin/").text
    r = client.post(
        "/admin/locale", data={"locale": "zh_CN", "next": "/admin/", "csrf_token": token}
    )
    assert r.status_code == 302, r.text
    assert 'lang="zh-CN"' in client.get("/admin/").text


def test_vendor_assets_are_served_from_node_modules(client):
    for name, marker in (("htmx.min.js", b"htmx"), ("echarts.min.js", b"echarts")):
        with client.get(f"/admin/vendor/{name}") as response:
            assert response.status_code == 200 and marker in response.data
    assert client.get("/admin/vendor/../../config/__init__.py").status_code == 404


def test_only_an_admin_path_renders_the_admin_error_page(client):
    assert client.get("/admin/no-such-page").status_code == 404
    assert client.get("/callbacks/wechat/999?timestamp=1").status_code == 404


def test_rate_limit_counts_the_client_behind_a_trusted_proxy(make_app):
    app = make_app(login_rate_limit="2 per minute", proxy_hops=1)
    client = app.test_client()
    make_user(app, "marketer")

    def attempt(client_ip):
        page = client.get("/admin/login", headers={"X-Forwarded-For": client_ip})
        return client.post(
            "/admin/login",
            data={"email": "marketer@acme.example", "password": "nope-nope-nope"}
            | {"csrf_token": csrf_token(page.text)},
            headers={"X-Forwarded-For": client_ip},
        ).status_code

    assert [attempt("203.0.113.7") for _ in range(3)] == [200, 200, 429]
    assert attempt("198.51.100.9") == 200  # another client behind the same proxy
