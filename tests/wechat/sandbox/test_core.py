"""Tokens, faults, the clock and callback delivery."""

from tests.wechat.sandbox.helpers import CORP_ID, OA_APP_ID, OA_SECRET
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
    assert api.get(info + "f" * 32).json["errcode"] == 40001
    sandbox_state.expire_tokens(OA_APP_ID)
    assert api.get(info + oa_token).json["errcode"] == 42001


def test_injected_faults(api, oa_token):
    api.post("/sandbox/faults", json={"path": "/oa/cgi-bin/user", "errcode": 45009, "times": 2})
    info = f"/oa/cgi-bin/user/info?openid=x&access_token={oa_token}"
    assert [api.get(info).json["errcode"] for _ in range(3)] == [45009, 45009, 40003]
    api.post("/sandbox/faults", json={"path": "*", "errcode": -1})
    assert api.get(info).json == {"errcode": -1, "errmsg": "system error"}


def test_daily_token_fetch_limit(api, sandbox_state):
    assert "access_token" in get_token(api)
    sandbox_state.tenant(OA_APP_ID).token_fetches_today = sandbox_state.TOKEN_FETCHES_PER_DAY
    assert get_token(api)["errcode"] == 45009
    sandbox_state.advance(86400)  # a new day, a new quota
    assert "access_token" in get_token(api)


def test_malformed_token_is_40014(api):
    assert api.get("/oa/cgi-bin/user/info?openid=x&access_token=short").json["errcode"] == 40014


def test_delivery_signs_and_encrypts_like_wechat(sandbox_state, receiver):
    tenant = sandbox_state.tenant(OA_APP_ID)
    xml = simulate.oa_event("o_1", "subscribe")
    sandbox_state.deliver(tenant, xml)
    [delivery] = sandbox_state.wait_for_deliveries()
    assert (delivery.status, delivery.answer) == (200, "success")
    assert receiver.received == [xml]


def test_a_refused_callback_is_retried_three_times(sandbox_state, receiver):
    tenant = sandbox_state.tenant(OA_APP_ID)
    receiver.fail_next = 2
    xml = simulate.oa_event("o_retry", "subscribe")
    sandbox_state.deliver(tenant, xml)
    [delivery] = sandbox_state.wait_for_deliveries()
    assert delivery.accepted and delivery.attempts == 2
    assert receiver.received == [xml]


def test_a_callback_refused_four_times_is_given_up(sandbox_state, receiver):
    receiver.fail_next = 10
    sandbox_state.deliver(sandbox_state.tenant(OA_APP_ID), simulate.oa_event("o_x", "subscribe"))
    [delivery] = sandbox_state.wait_for_deliveries()
    assert (delivery.accepted, delivery.attempts, delivery.status) == (False, 3, 500)
    receiver.fail_next = 0
