"""core.transient: which failed outbound calls are worth trying again, and which may have
been carried out although no answer came."""

import pytest
import requests
from redis.exceptions import LockError

from core.outbound import Refused, Unreachable
from core.transient import is_transient, may_have_gone_out, transient_answer
from wechat.clients import WeChatApiError


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


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_busy_or_down_webhook_answers_are_transient(status):
    assert transient_answer(status)


@pytest.mark.parametrize("status", [200, 301, 400, 401, 403, 404, 410, 422])
def test_other_webhook_answers_are_final(status):
    assert not transient_answer(status)
