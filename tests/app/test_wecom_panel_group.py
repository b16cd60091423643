"""The sidebar's customer-group panel, with the members from the sandbox's groupchat/get."""

import pytest
from sqlalchemy import select

from models import Staff
from tests.app.admin.helpers import sign_in
from tests.factories import make_account, make_customer, make_staff, make_user
from tests.helpers import harpoon_of
from tests.wecom_platform import api_calls, connect_corp, corp, fail_next
from wechat.sandbox import wecom, wecom_groups

pytestmark = pytest.mark.sandbox


@pytest.fixture
def group(app, platform):
    channel_id = connect_corp(app, platform)
    tenant = corp(platform)
    wecom.add_staff(platform.state, tenant, "zhangsan", "张三")
    make_staff(app, "张三", "zhangsan")
    account_id = make_account(app, "华信科技", score=42.0, tier=1)
    make_customer(app, channel_id, "wmKnown", "李雷", account_id=account_id, role="cio")
    make_customer(app, channel_id, "wmLoose", "王芳")
    with platform.state.lock:
        chat = wecom_groups.create_group(
            platform.state, tenant, owner="zhangsan", name="华信项目群"
        )
        for userid in ("wmKnown", "wmLoose", "wmStranger"):
            wecom_groups.join_group(platform.state, tenant, chat.chat_id, userid)
    return channel_id, chat.chat_id


def test_the_group_shows_accounts_their_members_and_strangers_apart(app, group, signed_in):
    channel_id, chat_id = group
    response = signed_in("marketer").get(f"/wecom/panel/{channel_id}/group/{chat_id}")
    assert response.status_code == 200, response.text
    page = response.text
    assert "华信项目群" in page and "4 人" in page
    account_part, rest = page.split("已知客户，尚无账户")
    assert "华信科技" in account_part and "李雷" in account_part
    assert "王芳" in rest.split("尚未识别")[0]
    assert "wmStranger" in rest.split("尚未识别")[1]
    assert "张三" in page  # our member


def test_members_are_cached_and_a_platform_error_is_a_clear_message(
    app, group, platform, signed_in
):
    channel_id, chat_id = group
    client = signed_in("marketer")
    assert client.get(f"/wecom/panel/{channel_id}/group/{chat_id}").status_code == 200
    fail_next(platform, "externalcontact/groupchat/get", 45009)
    cached = client.get(f"/wecom/panel/{channel_id}/group/{chat_id}")
    assert cached.status_code == 200  # from Redis: WeCom was not asked again
    unknown = client.get(f"/wecom/panel/{channel_id}/group/wrUnknown")
    assert unknown.status_code == 502
    assert "企业微信不认识这个群" in unknown.text


def _sales_user(app, email: str, *, staff_userid: str | None = None) -> int:
    """A salesperson; `staff_userid` names the existing Staff row mapped to them."""
    user_id = make_user(app, "sales", email=email)
    if staff_userid:
        with harpoon_of(app).db.session() as session:
            session.scalars(
                select(Staff).where(Staff.userid == staff_userid)
            ).one().user_id = user_id
            session.commit()
    return user_id


def test_a_salesperson_opens_only_groups_they_are_in(app, group, platform):
    channel_id, chat_id = group
    path = f"/wecom/panel/{channel_id}/group/{chat_id}"
    tenant = corp(platform)
    wecom.add_staff(platform.state, tenant, "lisi", "李四")
    make_staff(app, "李四", "lisi")
    _sales_user(app, "lisi@acme.example", staff_userid="lisi")
    outsider = app.test_client()
    sign_in(outsider, "lisi@acme.example")

    refused = outsider.get(path)
    assert refused.status_code == 403
    assert (
        "不在这个群" in refused.text and "李雷" not in refused.text and "华信" not in refused.text
    )
    with_no_staff = app.test_client()
    _sales_user(app, "nobody@acme.example")
    sign_in(with_no_staff, "nobody@acme.example")
    assert with_no_staff.get(path).status_code == 403

    with platform.state.lock:  # 李四 joins the group as a member of the corp (type 1)
        wecom_groups.join_group(platform.state, tenant, chat_id, "lisi")
    redis = harpoon_of(app).queue.connection  # the cached member list is the old one
    redis.delete(*redis.keys(f"*:wecom-group:{channel_id}:{chat_id}"))
    assert outsider.get(path).status_code == 200

    owner = app.test_client()  # 张三 owns the group
    _sales_user(app, "zhangsan@acme.example", staff_userid="zhangsan")
    sign_in(owner, "zhangsan@acme.example")
    answer = owner.get(path)
    assert answer.status_code == 200 and "李雷" in answer.text


def test_a_refusal_of_wecom_is_cached_a_minute(app, group, platform, signed_in):
    channel_id, _chat_id = group
    client = signed_in("marketer")
    path = f"/wecom/panel/{channel_id}/group/wrMadeUp"
    assert client.get(path).status_code == 502
    calls = api_calls(platform)
    fail_next(platform, "externalcontact/groupchat/get", 48002)
    again = client.get(path)
    assert again.status_code == 502 and "企业微信不认识这个群" in again.text
    assert api_calls(platform) == calls  # WeCom was not asked again
