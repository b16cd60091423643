"""Signing in from WeCom (member OAuth through the sandbox) and the sidebar's signatures."""

import re
import urllib.parse

import pytest
from sqlalchemy import select

from app.wecom_app import OAUTH_RETURN_LIMIT
from models import AuditLog, RefusedSignIn, User
from tests.app.admin.helpers import post_with_token, sign_in
from tests.factories import add_staff, make_staff, make_user
from tests.helpers import WECOM_CREDS, all_of, harpoon_of
from tests.wecom_platform import connect_corp
from wechat.clients import jsapi_signature
from wechat.sandbox import wecom_client

pytestmark = pytest.mark.sandbox


@pytest.fixture
def corp(app, platform):
    """acme's corp in the sandbox, with 张三 a member mapped to the sales user."""
    channel_id = connect_corp(app, platform)
    add_staff(platform, "zhangsan", "张三")
    user_id = make_user(app, "sales")
    make_staff(app, "张三", "zhangsan", user_id=user_id)
    return channel_id


def oauth(client, platform, channel_id, userid, next_path=None):
    """Open the sign-in as `userid` in WeCom's browser; the answer of Harpoon's return page."""
    query = {"next": next_path} if next_path else {}
    start = client.get(f"/wecom/{channel_id}/signin", query_string=query)
    assert start.status_code == 302, start.text
    authorize = urllib.parse.urlsplit(start.headers["Location"].split("#")[0])
    assert f"{authorize.scheme}://{authorize.netloc}" == platform.url
    answer = platform.app.test_client().get(
        f"{authorize.path}?{authorize.query}&userid={urllib.parse.quote(userid)}"
    )
    assert answer.status_code == 302, answer.text
    back = urllib.parse.urlsplit(answer.headers["Location"])
    return client.get(f"{back.path}?{back.query}"), back


def test_a_mapped_member_is_signed_in_without_a_password(app, client, platform, corp):
    sidebar = f"/wecom/{corp}/sidebar"
    assert client.get(sidebar).headers["Location"].startswith(f"/wecom/{corp}/signin?next=")
    answer, _ = oauth(client, platform, corp, "zhangsan", sidebar)
    assert answer.status_code == 302 and answer.headers["Location"] == sidebar
    page = client.get(sidebar)
    assert page.status_code == 200
    assert 'data-corp-id="' + WECOM_CREDS.app_id + '"' in page.text
    assert f"{platform.url}/sandbox/wecom/bridge.js" in page.text
    # The admin's own session: the same sign-in opens the admin.
    assert client.get("/admin/").status_code == 200


def test_an_unmapped_member_is_told_and_the_admin_sees_them(app, client, platform, corp):
    add_staff(platform, "lisi", "李四")
    make_staff(app, "李四", "lisi")
    for _ in range(2):
        answer, _ = oauth(client, platform, corp, "lisi", f"/wecom/{corp}/sidebar")
    assert answer.status_code == 403
    assert "李四" in answer.text and "lisi" in answer.text and "管理员" in answer.text
    assert client.get(f"/wecom/{corp}/sidebar").status_code == 302  # not signed in
    [refused] = all_of(app, RefusedSignIn)
    assert (refused.member, refused.reason, refused.attempts) == ("lisi", "no_user", 2)
    with harpoon_of(app).db.session() as session:
        audits = session.scalars(
            select(AuditLog).where(AuditLog.action == "wecom.sign_in_refused")
        ).all()
    assert [a.changes["member"] for a in audits] == ["lisi", "lisi"]

    admin = app.test_client()
    make_user(app, "admin")
    sign_in(admin, "admin@acme.example")
    staff_page = admin.get("/admin/staff").text
    notice = staff_page.split('id="refused-sign-ins"')[1].split("</section>")[0]
    assert "lisi" in notice and "李四" in notice
    staff_id = re.search(r'action="/admin/staff/(\d+)/user"', notice).group(1)
    sales_id = next(u.id for u in all_of(app, User) if u.role == "sales")
    post_with_token(admin, f"/admin/staff/{staff_id}/user", {"user_id": sales_id})
    assert all_of(app, RefusedSignIn) == []
    answer, _ = oauth(client, platform, corp, "lisi", f"/wecom/{corp}/sidebar")
    assert answer.status_code == 302


@pytest.mark.parametrize("case", ["no_staff", "inactive_staff", "inactive_user", "not_member"])
def test_members_without_an_active_user_are_refused(app, client, platform, corp, case):
    if case == "no_staff":
        add_staff(platform, "wangwu", "王五")
        userid = "wangwu"
    elif case == "inactive_user":
        add_staff(platform, "zhaoliu", "赵六")
        make_staff(app, "赵六", "zhaoliu", user_id=make_user(app, "viewer", active=False))
        userid = "zhaoliu"
    elif case == "inactive_staff":  # the sync found the customer-contact permission gone
        add_staff(platform, "sunqi", "孙七")
        make_staff(app, "孙七", "sunqi", active=False, user_id=make_user(app, "marketer"))
        userid = "sunqi"
    else:
        userid = "someone-else"  # not a member of the corp: WeCom answers an openid
    answer, _ = oauth(client, platform, corp, userid)
    assert answer.status_code == 403
    [refused] = all_of(app, RefusedSignIn)
    assert refused.reason == case
    if case == "not_member":
        assert refused.member == wecom_client.openid_of(WECOM_CREDS.app_id, userid)
        assert "不是" in answer.text
    if case == "inactive_staff":
        assert "客户联系权限" in answer.text
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_owners_and_admins_sign_in_with_their_password_only(app, client, platform, corp, role):
    """Whoever links a member to the owner must not make that member the owner in WeCom."""
    add_staff(platform, "boss", "老板")
    make_staff(app, "老板", "boss", user_id=make_user(app, role))
    answer, _ = oauth(client, platform, corp, "boss", f"/wecom/{corp}/sidebar")
    assert answer.status_code == 403
    assert "密码" in answer.text and 'id="password-only"' in answer.text
    assert client.get("/admin/").status_code == 302  # not signed in
    [refused] = all_of(app, RefusedSignIn)
    assert (refused.member, refused.reason) == ("boss", "password_only")
    # The password still works.
    assert sign_in(app.test_client(), f"{role}@acme.example").status_code == 302


def test_the_oauth_return_is_rate_limited_per_address(app, client, platform, corp):
    """Each return calls WeCom's auth/getuserinfo: one address cannot make it call on."""
    limit = int(OAUTH_RETURN_LIMIT.split()[0])
    codes = [
        client.get(f"/wecom/{corp}/oauth?code=made-up&state=x").status_code
        for _ in range(limit + 1)
    ]
    assert codes == [400] * limit + [429]
    other = app.test_client()
    answer = other.get(
        f"/wecom/{corp}/oauth?code=made-up&state=x", environ_base={"REMOTE_ADDR": "10.0.0.9"}
    )
    assert answer.status_code == 400  # another address is not held back


def test_a_reused_or_expired_code_is_refused(app, client, platform, corp):
    _, back = oauth(client, platform, corp, "zhangsan")
    again = app.test_client()
    start = again.get(f"/wecom/{corp}/signin")  # its own state cookie
    state = urllib.parse.parse_qs(
        urllib.parse.urlsplit(start.headers["Location"].split("#")[0]).query
    )["state"][0]
    code = urllib.parse.parse_qs(back.query)["code"][0]
    reused = again.get(f"/wecom/{corp}/oauth", query_string={"code": code, "state": state})
    assert reused.status_code == 400 and "过期" in reused.text
    assert again.get("/admin/").status_code == 302

    late = app.test_client()
    late.get(f"/wecom/{corp}/signin")
    start = late.get(f"/wecom/{corp}/signin")
    authorize = urllib.parse.urlsplit(start.headers["Location"].split("#")[0])
    answer = platform.app.test_client().get(f"{authorize.path}?{authorize.query}&userid=zhangsan")
    back = urllib.parse.urlsplit(answer.headers["Location"])
    platform.state.advance(wecom_client.MEMBER_CODE_SECONDS + 1)
    expired = late.get(f"{back.path}?{back.query}")
    assert expired.status_code == 400
    assert late.get("/admin/").status_code == 302


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "evil"]
)
def test_next_leading_off_harpoon_is_refused(client, corp, target):
    answer = client.get(f"/wecom/{corp}/signin", query_string={"next": target})
    assert answer.status_code == 400
    assert "Location" not in answer.headers


def test_a_return_without_this_browsers_state_is_refused(app, client, platform, corp):
    _, back = oauth(app.test_client(), platform, corp, "zhangsan")
    stranger = client.get(f"{back.path}?{back.query}")  # no state cookie: not this browser's
    assert stranger.status_code == 400
    assert client.get("/admin/").status_code == 302


def signed_in_sidebar(client, platform, corp) -> str:
    oauth(client, platform, corp, "zhangsan")
    page = client.get(f"/wecom/{corp}/sidebar")
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)


def test_the_signature_endpoint_signs_this_sites_page_with_both_tickets(
    app, client, platform, corp
):
    token = signed_in_sidebar(client, platform, corp)
    url = f"http://localhost/wecom/{corp}/sidebar"
    answer = client.post(
        f"/wecom/{corp}/jsapi/signature", json={"url": url + "#x"}, headers={"X-CSRFToken": token}
    )
    assert answer.status_code == 200, answer.text
    state = wecom_client.client_state(platform.state.tenant(WECOM_CREDS.app_id))
    for kind, tickets in (("config", state.corp_tickets), ("agentConfig", state.agent_tickets)):
        signed = answer.json[kind]
        assert signed["signature"] == jsapi_signature(
            tickets[-1].value, signed["nonceStr"], signed["timestamp"], url
        )


def test_the_signature_endpoint_refuses_what_does_not_check_out(app, client, platform, corp):
    path = f"/wecom/{corp}/jsapi/signature"
    assert client.post(path, json={"url": "http://localhost/"}).status_code in (400, 401)
    token = signed_in_sidebar(client, platform, corp)
    assert client.post(path, json={"url": "http://localhost/"}).status_code == 400  # no CSRF
    headers = {"X-CSRFToken": token}
    for body in ({"url": "https://evil.example/page"}, {"url": 7}, {}, ["x"]):
        assert client.post(path, json=body, headers=headers).status_code == 400
    other = make_user(app, "sales", "globex")
    assert other
    stranger = app.test_client()
    assert stranger.post(path, json={"url": "http://localhost/"}).status_code in (400, 401)
