"""Tokens, faults, the clock and callback delivery."""

from tests.wechat.sandbox.conftest import CORP_ID, OA_APP_ID, OA_SECRET
from wechat import simulate


def get_token(api):
    return api.get(
        f"/oa/cgi-bin/token?grant_type=client_credential&appid={OA_APP_ID}&secret={OA_SECRET}"
    ).json


def test_oa_token_fetch_and_wrong_secret(api):
    assert get_token(api)["expires_in"] == 7200
    bad = api.get(f"/oa/cgi-bin/token?grant_type=client_credential&appid={OA_APP_ID}&secret=x")
    assert bad.json["errcode"] == 40125


def test_new_oa_token_invalidates_the_old_after_the_grace_period(api, sandbox_state):
    old = get_token(api)["access_token"]
    new = get_token(api)["access_token"]
    assert old != new
    info = "/oa/cgi-bin/user/info?openid=nobody&access_token="
    assert api.get(info + old).json["errcode"] == 40003  # still valid, openid unknown
    sandbox_state.advance(301)
    assert api.get(info + old).json["errcode"] == 42001
    assert api.get(info + new).json["errcode"] == 40003


def test_wecom_token_is_reused_while_valid_and_per_secret(api, contact_token, agent_token):
    again = api.get(f"/wecom/cgi-bin/gettoken?corpid={CORP_ID}&corpsecret=contact-secret").json
    assert again["access_token"] == contact_token
    assert agent_token != contact_token


def test_expired_and_unknown_tokens(api, sandbox_state, oa_token):
    info = "/oa/cgi-bin/user/info?openid=x&access_token="
    assert api.get(info + "forged").json["errcode"] == 40001
    sandbox_state.expire_tokens(OA_APP_ID)
    assert api.get(info + oa_token).json["errcode"] == 42001


def test_injected_faults(api, oa_token):
    api.post("/sandbox/faults", json={"path": "/oa/cgi-bin/user", "errcode": 45009, "times": 2})
    info = f"/oa/cgi-bin/user/info?openid=x&access_token={oa_token}"
    assert [api.get(info).json["errcode"] for _ in range(3)] == [45009, 45009, 40003]
    api.post("/sandbox/faults", json={"path": "*", "errcode": -1})
    assert api.get(info).json == {"errcode": -1, "errmsg": "system error"}


def test_daily_token_fetch_limit(api, sandbox_state):
    sandbox_state.tenant(OA_APP_ID).token_fetches = sandbox_state.TOKEN_FETCHES_PER_DAY
    assert get_token(api)["errcode"] == 45009


def test_delivery_signs_and_encrypts_like_wechat(sandbox_state, receiver):
    tenant = sandbox_state.tenant(OA_APP_ID)
    xml = simulate.oa_event("o_1", "subscribe")
    sandbox_state.deliver(tenant, xml)
    [delivery] = sandbox_state.wait_for_deliveries()
    assert (delivery.status, delivery.answer) == (200, "success")
    assert receiver.received == [xml]
