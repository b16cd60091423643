"""core.transient: which failed outbound calls are worth trying again, and which may have
been carried out although no answer came."""

import fakeredis
import pytest
import requests
from redis.exceptions import LockError

from core.outbound import Refused, Unreachable
from core.transient import is_transient, may_have_gone_out, transient_answer
from wechat import clients as wechat_clients
from wechat.clients import RetryPolicy, TokenStore, WeChatApiError, WeChatClients
from wechat.sandbox.core import Fault, Tenant

APP_ID, SECRET = "wxtransient000001", "transient-secret"
SEND = "message/custom/send"
MESSAGE = {"touser": "o_0000", "msgtype": "text", "text": {"content": "hi"}}


def network_error(cause: Exception) -> WeChatApiError:
    """As the client raises it: errcode None, from the requests exception."""
    try:
        raise WeChatApiError(None, f"network: {cause}", "message/send") from cause
    except WeChatApiError as exc:
        return exc


@pytest.mark.parametrize("errcode", [40001, 40014, 42001, -1, 45009, None])
def test_tokens_refused_a_busy_platform_and_no_answer_are_transient(errcode):
    assert is_transient(WeChatApiError(errcode, "x"))


@pytest.mark.parametrize("errcode", [40003, 41051, 45015, 45047, 48001, 84061, 0])
def test_a_refusal_about_the_request_is_final(errcode):
    assert not is_transient(WeChatApiError(errcode, "x"))


@pytest.mark.parametrize(
    "exc",
    [
        requests.Timeout("read"),
        requests.ConnectionError("refused"),
        Unreachable("no route"),
        TimeoutError(),
    ],
)
def test_timeouts_and_unreachable_destinations_are_transient(exc):
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [Refused("10.0.0.1"), ValueError("bad"), KeyError("x")])
def test_refused_targets_and_our_own_errors_are_final(exc):
    assert not is_transient(exc)


def test_a_refusal_or_a_connection_never_opened_sent_nothing():
    assert not may_have_gone_out(WeChatApiError(45009, "busy"))
    assert not may_have_gone_out(WeChatApiError(42001, "expired"))
    assert not may_have_gone_out(network_error(requests.ConnectionError("refused")))
    assert not may_have_gone_out(network_error(requests.ConnectTimeout("connect")))
    assert not may_have_gone_out(network_error(LockError("token lock")))


def test_an_unanswered_or_unreadable_call_may_have_been_carried_out():
    assert may_have_gone_out(network_error(requests.ReadTimeout("read")))
    assert may_have_gone_out(network_error(ValueError("garbled JSON")))
    assert may_have_gone_out(WeChatApiError(None, "no cause known"))


def test_a_failed_token_fetch_sent_nothing():
    try:
        raise WeChatApiError(None, "token refresh: read", SEND, token_failed=True) from (
            requests.ReadTimeout("read")
        )
    except WeChatApiError as exc:
        assert not may_have_gone_out(exc)
        assert is_transient(exc)


@pytest.fixture
def oa_client(platform, monkeypatch):
    """A client of an OA in the sandbox whose token endpoint answers slower than we wait."""
    platform.reset()
    platform.state.add_tenant(Tenant("oa", APP_ID, {"app": SECRET}, "tok", "T" * 43))
    monkeypatch.setattr(wechat_clients, "TOKEN_TIMEOUT_SECONDS", 0.2)
    fast = RetryPolicy(busy_retries=3, base_delay=0.001, max_delay=0.01)
    return WeChatClients(platform.url, TokenStore(fakeredis.FakeRedis()), fast).oa(APP_ID, SECRET)


def slow_token(platform) -> None:
    platform.state.add_fault(Fault(path="/oa/cgi-bin/token", latency_ms=600, times=1))


def test_a_token_fetch_that_timed_out_before_a_post_sent_nothing(oa_client, platform):
    slow_token(platform)
    with pytest.raises(WeChatApiError) as raised:
        oa_client.post(SEND, data=MESSAGE)
    assert raised.value.errcode is None and raised.value.token_failed
    assert not may_have_gone_out(raised.value)
    assert is_transient(raised.value)


def test_a_token_refresh_that_timed_out_after_a_refusal_sent_nothing(oa_client, platform):
    oa_client.access_token  # noqa: B018
    platform.state.add_fault(Fault(path=f"/oa/cgi-bin/{SEND}", errcode=40001, times=1))
    slow_token(platform)
    with pytest.raises(WeChatApiError, match="token refresh") as raised:
        oa_client.post(SEND, data=MESSAGE)
    assert not may_have_gone_out(raised.value)
    assert is_transient(raised.value)


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_busy_or_down_webhook_answers_are_transient(status):
    assert transient_answer(status)


@pytest.mark.parametrize("status", [200, 301, 400, 401, 403, 404, 410, 422])
def test_other_webhook_answers_are_final(status):
    assert not transient_answer(status)
