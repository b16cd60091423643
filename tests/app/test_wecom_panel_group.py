"""The sidebar's customer-group panel, with the members from the sandbox's groupchat/get."""

import pytest

from tests.factories import make_account, make_customer, make_staff
from tests.wecom_platform import connect_corp, corp, fail_next
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
