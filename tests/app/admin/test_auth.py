"""Sign-in, roles, CSRF, rate limiting, language, vendor assets."""

from tests.app.admin.helpers import csrf_token, sign_in
from tests.factories import PASSWORD, make_user


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


def attempt_from(app, address, email="marketer@acme.example", password="nope-nope-nope"):
    """One sign-in from a fresh browser at a client address (behind one proxy)."""
    return attempt_in(app.test_client(), address, email, password)


def attempt_in(client, address, email="marketer@acme.example", password="nope-nope-nope"):
    page = client.get("/admin/login", headers={"X-Forwarded-For": address})
    return client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf_token": csrf_token(page.text)},
        headers={"X-Forwarded-For": address},
    )


def test_requests_are_limited_per_client_address_behind_a_proxy(make_app):
    app = make_app(login_rate_limit="2 per minute", proxy_hops=1)
    client = app.test_client()
    make_user(app, "marketer")
    answers = [attempt_in(client, "203.0.113.7", "a@acme.example") for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert "您的网络地址请求过于频繁" in answers[-1].text or (
        "Too many requests from your address" in answers[-1].text
    )
    assert attempt_in(client, "198.51.100.9", "b@acme.example").status_code == 200


def test_ten_failures_from_ten_addresses_do_not_lock_the_real_user_out(make_app):
    app = make_app(proxy_hops=1)
    make_user(app, "marketer")
    for n in range(10):
        assert attempt_from(app, f"192.0.2.{n}").status_code == 200
    # The real user, on a browser that never signed in here, from their own address.
    answer = attempt_from(app, "198.51.100.20", password=PASSWORD)
    assert answer.status_code == 302 and answer.location == "/admin/"


def test_one_guessing_address_is_stopped_and_nobody_else_is(make_app):
    app = make_app(proxy_hops=1)
    make_user(app, "marketer")
    guesser = app.test_client()
    assert [attempt_in(guesser, "203.0.113.7").status_code for _ in range(5)] == [200] * 5
    stopped = attempt_in(guesser, "203.0.113.7", password=PASSWORD)
    assert stopped.status_code == 429
    assert "Too many failed sign-ins to this account from your network" in stopped.text or (
        "来自您网络的登录失败次数过多" in stopped.text
    )
    # The same address may still sign in to another account; the user elsewhere is untouched.
    make_user(app, "sales")
    other = attempt_in(guesser, "203.0.113.7", "sales@acme.example", PASSWORD)
    assert other.status_code == 302
    assert attempt_from(app, "198.51.100.20", password=PASSWORD).status_code == 302


def test_many_addresses_slow_an_account_down_but_its_known_browser_gets_in(make_app):
    app = make_app(proxy_hops=1)
    make_user(app, "marketer")
    users_browser = app.test_client()
    assert attempt_in(users_browser, "198.51.100.20", password=PASSWORD).status_code == 302
    users_browser.post(
        "/admin/logout", data={"csrf_token": csrf_token(users_browser.get("/admin/").text)}
    )

    first_tries = [attempt_from(app, f"192.0.2.{n}").status_code for n in range(20)]
    assert first_tries == [200] * 20
    # Past ten failures each address gets one attempt per doubling delay (1 s, 2 s, 4 s...):
    # the last five addresses must wait 32 s or more before their next.
    retries = [attempt_from(app, f"192.0.2.{n}") for n in range(15, 20)]
    assert [a.status_code for a in retries] == [429] * 5
    assert "attempts are slowed down" in retries[0].text or "登录已被放慢" in retries[0].text

    answer = attempt_in(users_browser, "198.51.100.20", password=PASSWORD)
    assert answer.status_code == 302 and answer.location == "/admin/"


def test_a_known_browser_signs_in_from_an_address_others_locked(make_app):
    """Office NAT, shared Wi-Fi: a neighbour's wrong passwords don't lock the user's browser."""
    app = make_app(proxy_hops=1)
    make_user(app, "marketer")
    users_browser = app.test_client()
    assert attempt_in(users_browser, "198.51.100.20", password=PASSWORD).status_code == 302
    users_browser.post(
        "/admin/logout", data={"csrf_token": csrf_token(users_browser.get("/admin/").text)}
    )
    neighbour = app.test_client()
    locked_out = [attempt_in(neighbour, "198.51.100.20").status_code for _ in range(6)]
    assert locked_out == [200] * 5 + [429]
    answer = attempt_in(users_browser, "198.51.100.20", password=PASSWORD)
    assert answer.status_code == 302 and answer.location == "/admin/"


def test_an_attack_that_never_stops_leaves_the_real_user_an_opening(make_app):
    app = make_app(proxy_hops=1)
    make_user(app, "marketer")
    attack = [attempt_from(app, f"192.0.2.{n % 20}").status_code for n in range(40)]
    assert attack.count(429) >= 5  # past ten failures the attacker's addresses are slowed down
    # The real user, on a browser that never signed in here, from an address of their own.
    answer = attempt_from(app, "198.51.100.20", password=PASSWORD)
    assert answer.status_code == 302 and answer.location == "/admin/"


def test_a_session_cookie_is_worthless_after_sign_out(app, client):
    make_user(app, "marketer")
    sign_in(client, "marketer@acme.example")
    stolen = client.get_cookie("session").value
    token = csrf_token(client.get("/admin/").text)
    client.post("/admin/logout", data={"csrf_token": token})
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/admin/").status_code == 302


def test_next_never_leaves_the_admin(app, client):
    make_user(app, "marketer")
    for target in ("//evil.example/", "https://evil.example/", "/admin/%0d%0aSet-Cookie:x=1", "/x"):
        page = client.get("/admin/login")
        response = client.post(
            f"/admin/login?next={target}",
            data={"email": "marketer@acme.example", "password": PASSWORD}
            | {"csrf_token": csrf_token(page.text)},
        )
        assert response.status_code == 302
        assert response.headers["Location"] == "/admin/"
        token = csrf_token(client.get("/admin/").text)
        client.post("/admin/logout", data={"csrf_token": token})


def test_json_api_answers_json_when_refused(app, client, signed_in):
    signed_out = client.get("/admin/api/dashboard/series")
    assert (signed_out.status_code, signed_out.json) == (401, {"error": "Unauthorized"})


def test_secure_cookies_over_https(make_app):
    app = make_app(public_base_url="https://harpoon.example")
    make_user(app, "marketer")
    response = sign_in(app.test_client(), "marketer@acme.example")
    assert "Secure" in response.headers["Set-Cookie"]


def test_language_chosen_before_sign_in_is_kept(app, client):
    make_user(app, "marketer")
    page = client.get("/admin/login")
    client.post(
        "/admin/locale",
        data={"locale": "en", "next": "/admin/login", "csrf_token": csrf_token(page.text)},
    )
    sign_in(client, "marketer@acme.example")
    assert 'lang="en"' in client.get("/admin/").text


def test_every_admin_route_requires_a_permission(app, signed_in):
    """A new page without `requires(...)` fails here; roles are checked against PERMISSIONS."""
    from app.admin.access import PERMISSIONS

    public = {"admin.login", "admin.logout", "admin.set_locale", "admin.static", "admin.vendor"}
    clients = {
        role: signed_in(role, workspace=f"ws-{role}")
        for role in ("owner", "admin", "marketer", "sales", "viewer")
    }
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin.") or rule.endpoint in public:
            continue
        view = app.view_functions[rule.endpoint]
        permission = getattr(view, "permission", None)
        assert permission in PERMISSIONS, f"{rule.endpoint} has no permission"
        if "GET" not in rule.methods or rule.arguments:
            continue
        for role, client in clients.items():
            status = client.get(rule.rule).status_code
            allowed = role in PERMISSIONS[permission]
            assert (status == 200) == allowed, (rule.endpoint, role, status)
