"""Channels page: list, connecting an OA or WeCom corp, the detail page, key rotation."""

import re

import pytest

from models import AuditLog, Channel
from tests.app.admin.helpers import csrf_token, field_errors, in_english, post_form
from tests.factories import make_channel
from tests.helpers import OA_CREDS, WECOM_CREDS, all_of, post_oa
from wechat import simulate

NEW_OA = {
    "name": "Acme 服务号",
    "app_id": "wx0123456789abcdef",
    "secret": "0123456789abcdef0123456789abcdef",
    "message_mode": "safe",
    "account_type": "service",
    "token": "",
    "aes_key": "",
}
SECRET_VALUES = (NEW_OA["secret"], "supersecret", "agentsecret")


def channels(app):
    return all_of(app, Channel)


def audits(app):
    return all_of(app, AuditLog)


def test_list_shows_each_channel_with_its_callback_url_and_verification(
    app, client, signed_in, oa_channel, wecom_channel
):
    client.get(f"/callbacks/wechat/{oa_channel}?{simulate.oa_url_check(OA_CREDS, 'hi')}")
    page = in_english(signed_in("marketer")).get("/admin/channels")
    assert page.status_code == 200
    assert OA_CREDS.app_id in page.text and WECOM_CREDS.app_id in page.text
    assert f"http://127.0.0.1:8000/callbacks/wechat/{oa_channel}" in page.text
    assert f"http://127.0.0.1:8000/callbacks/wecom/{wecom_channel}" in page.text
    assert "Official Account" in page.text and "WeCom" in page.text
    assert page.text.count("Verified") == 1 and page.text.count("Not verified yet") == 1
    assert OA_CREDS.token not in page.text and OA_CREDS.aes_key not in page.text


def test_the_default_locale_renders_too(signed_in, oa_channel):
    assert signed_in("admin").get("/admin/channels").status_code == 200
    assert signed_in("owner").get(f"/admin/channels/{oa_channel}").status_code == 200


def test_a_marketer_sees_the_list_without_add_buttons(signed_in, oa_channel):
    page = signed_in("marketer").get("/admin/channels")
    assert page.status_code == 200
    assert "/admin/channels/new/" not in page.text
    admin_page = signed_in("admin").get("/admin/channels")
    assert "/admin/channels/new/oa" in admin_page.text
    assert "/admin/channels/new/wecom" in admin_page.text


def test_sales_may_not_open_channels_at_all(signed_in, oa_channel):
    client = signed_in("sales")
    for path in ("/admin/channels", f"/admin/channels/{oa_channel}", "/admin/channels/new/oa"):
        assert client.get(path).status_code == 403, path
    assert "/admin/channels" not in client.get("/admin/").text  # not in the navigation


@pytest.mark.parametrize("role", ["marketer", "sales", "viewer"])
def test_only_owners_and_admins_may_add_or_rotate(app, signed_in, oa_channel, role):
    client = signed_in(role)
    token = csrf_token(client.get("/admin/").text)
    for path in ("/admin/channels/new/oa", "/admin/channels/new/wecom"):
        assert client.get(path).status_code == 403
        assert client.post(path, data={**NEW_OA, "csrf_token": token}).status_code == 403
    rotate = f"/admin/channels/{oa_channel}/rotate-aes-key"
    assert client.post(rotate, data={"csrf_token": token}).status_code == 403
    assert len(channels(app)) == 1 and audits(app) == []


def test_adding_an_oa_generates_credentials_and_audits_without_secrets(app, signed_in):
    client = in_english(signed_in("admin"))
    response = post_form(client, "/admin/channels/new/oa", NEW_OA)

    [channel] = channels(app)
    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/channels/{channel.id}"
    assert (channel.kind, channel.name, channel.app_id) == ("oa", "Acme 服务号", NEW_OA["app_id"])
    assert channel.secret == NEW_OA["secret"]
    assert (channel.message_mode, channel.account_type) == ("safe", "service")
    assert re.fullmatch(r"[A-Za-z0-9]{32}", channel.token)
    assert re.fullmatch(r"[A-Za-z0-9]{43}", channel.aes_key)

    [entry] = audits(app)
    assert (entry.action, entry.target_type, entry.target_id) == (
        "channel.create",
        "channel",
        str(channel.id),
    )
    assert entry.changes["app_id"] == NEW_OA["app_id"] and entry.changes["kind"] == "oa"
    logged = str(entry.changes)
    assert all(value not in logged for value in (channel.secret, channel.token, channel.aes_key))

    detail = client.get(response.headers["Location"])
    assert "is connected" in detail.text  # the flash
    assert f"http://127.0.0.1:8000/callbacks/wechat/{channel.id}" in detail.text
    assert channel.token in detail.text and channel.aes_key in detail.text
    assert "设置与开发 › 基本配置" in detail.text and "安全模式" in detail.text
    assert channel.secret not in detail.text  # the AppSecret is never shown again


def test_given_credentials_are_kept_and_plaintext_mode_needs_no_key(app, signed_in):
    client = signed_in("owner")
    fields = {**NEW_OA, "token": " mytoken123 ", "message_mode": "plain"}
    assert post_form(client, "/admin/channels/new/oa", fields).status_code == 302
    [channel] = channels(app)
    assert (channel.token, channel.aes_key, channel.message_mode) == ("mytoken123", None, "plain")


def test_adding_a_wecom_corp(app, signed_in):
    client = signed_in("admin")
    response = post_form(
        client,
        "/admin/channels/new/wecom",
        {
            "name": "Acme 企业微信",
            "app_id": WECOM_CREDS.app_id,
            "secret": "supersecret",
            "agent_id": "1000002",
            "agent_secret": "agentsecret",
            "token": WECOM_CREDS.token,
            "aes_key": WECOM_CREDS.aes_key,
        },
    )
    assert response.status_code == 302
    [channel] = channels(app)
    assert (channel.kind, channel.app_id, channel.message_mode) == (
        "wecom",
        WECOM_CREDS.app_id,
        "safe",
    )
    assert (channel.agent_id, channel.agent_secret) == ("1000002", "agentsecret")
    assert (channel.token, channel.aes_key) == (WECOM_CREDS.token, WECOM_CREDS.aes_key)
    [entry] = audits(app)
    assert entry.changes["agent_id"] == "1000002"
    assert not any(value in str(entry.changes) for value in SECRET_VALUES)
    detail = client.get(response.headers["Location"]).text
    assert f"/callbacks/wecom/{channel.id}" in detail and "客户联系" in detail


def test_validation_errors_show_on_their_field_and_nothing_is_created(app, signed_in):
    client = in_english(signed_in("admin"))
    page = post_form(
        client,
        "/admin/channels/new/oa",
        {**NEW_OA, "name": "", "token": "a!", "aes_key": "A" * 42},
    ).text
    assert field_errors(page, "aes_key") == ["EncodingAESKey is 43 letters or digits"]
    assert field_errors(page, "token") == ["3 to 32 letters or digits."]
    assert field_errors(page, "name") == ["This field is required."]
    assert field_errors(page, "app_id") == []
    assert f'value="{NEW_OA["app_id"]}"' in page and NEW_OA["secret"] not in page

    wecom = post_form(
        client,
        "/admin/channels/new/wecom",
        {"name": "W", "app_id": "ww 1", "secret": "s", "agent_id": "1000002"},
    ).text
    assert field_errors(wecom, "app_id") == ["Letters and digits only."]
    assert field_errors(wecom, "agent_secret") == ["The app's Secret is needed with its AgentId."]
    assert channels(app) == [] and audits(app) == []


def test_a_duplicate_appid_shows_under_appid(app, signed_in, oa_channel):
    client = in_english(signed_in("admin"))
    page = post_form(client, "/admin/channels/new/oa", {**NEW_OA, "app_id": OA_CREDS.app_id})
    assert page.status_code == 200
    assert field_errors(page.text, "app_id") == ["already connected in this workspace"]
    assert len(channels(app)) == 1 and audits(app) == []


def test_secrets_on_the_detail_page_are_for_managers_only(signed_in, oa_channel):
    page = in_english(signed_in("marketer")).get(f"/admin/channels/{oa_channel}")
    assert page.status_code == 200
    assert f"/callbacks/wechat/{oa_channel}" in page.text
    assert OA_CREDS.token not in page.text and OA_CREDS.aes_key not in page.text
    assert "Only owners and admins see it." in page.text
    assert "rotate-aes-key" not in page.text


def test_rotating_the_key_keeps_the_old_one_for_callbacks_in_flight(
    app, client, signed_in, oa_channel
):
    post_oa(client, oa_channel, simulate.oa_event("o_1", "subscribe"))  # caches the old keys
    admin = signed_in("admin")
    detail = admin.get(f"/admin/channels/{oa_channel}").text
    response = admin.post(
        f"/admin/channels/{oa_channel}/rotate-aes-key", data={"csrf_token": csrf_token(detail)}
    )
    assert response.headers["Location"] == f"/admin/channels/{oa_channel}"

    [channel] = channels(app)
    assert channel.previous_aes_key == OA_CREDS.aes_key
    assert re.fullmatch(r"[A-Za-z0-9]{43}", channel.aes_key) and channel.aes_key != OA_CREDS.aes_key
    [entry] = audits(app)
    assert (entry.action, entry.target_id) == ("channel.rotate_aes_key", str(oa_channel))
    assert channel.aes_key not in str(entry.changes)
    assert OA_CREDS.aes_key not in str(entry.changes)
    assert channel.aes_key in admin.get(f"/admin/channels/{oa_channel}").text

    # This process's cache was refreshed: the new key opens callbacks at once, the old one still.
    new_creds = simulate.Credentials(OA_CREDS.app_id, OA_CREDS.token, channel.aes_key)
    callback = simulate.oa_message(new_creds, simulate.oa_event("o_2", "subscribe"))
    posted = client.post(callback.path(f"/callbacks/wechat/{oa_channel}"), data=callback.body)
    assert posted.status_code == 200
    post_oa(client, oa_channel, simulate.oa_event("o_3", "subscribe"))


def test_another_workspace_gets_404_and_never_sees_the_channel(app, signed_in, oa_channel):
    client = signed_in("owner", "other")
    assert client.get(f"/admin/channels/{oa_channel}").status_code == 404
    token = csrf_token(client.get("/admin/channels").text)
    rotate = f"/admin/channels/{oa_channel}/rotate-aes-key"
    assert client.post(rotate, data={"csrf_token": token}).status_code == 404
    assert OA_CREDS.app_id not in client.get("/admin/channels").text
    make_channel(app, "oa", OA_CREDS, workspace="other")  # the same OA in both is allowed
    assert OA_CREDS.app_id in client.get("/admin/channels").text
    assert channels(app)[0].aes_key == OA_CREDS.aes_key and audits(app) == []


WECHAT_SAFE = simulate.Credentials("wx00000000000000af", OA_CREDS.token, OA_CREDS.aes_key)
PLAIN_MODE_RISK = "WeChat signs only the callback URL's query string, not the message"


def test_plaintext_mode_says_what_it_risks_where_it_is_chosen_and_shown(app, signed_in):
    owner = in_english(signed_in("owner"))
    new_page = owner.get("/admin/channels/new/oa").text
    assert PLAIN_MODE_RISK in new_page and "Safe mode recommended" in new_page

    plain = make_channel(app, "oa", OA_CREDS, message_mode="plain")
    safe = make_channel(app, "oa", WECHAT_SAFE, message_mode="safe")
    assert PLAIN_MODE_RISK in owner.get(f"/admin/channels/{plain}").text
    assert PLAIN_MODE_RISK not in owner.get(f"/admin/channels/{safe}").text
    listed = owner.get("/admin/channels").text
    assert listed.count("Safe mode recommended") == 1


def test_the_plaintext_mode_warning_is_in_chinese_by_default(app, signed_in):
    plain = make_channel(app, "oa", OA_CREDS, message_mode="plain")
    page = signed_in("owner").get(f"/admin/channels/{plain}").text
    assert "明文模式下，微信只对回调 URL 的查询参数签名" in page
    assert "建议使用安全模式" in page
