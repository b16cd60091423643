"""The one place that decides whether a failed outbound call is worth trying again.

Every sender (welcomes, notifications, journey messages and webhooks, tag sync, pushes,
enrichment, group sends) asks `is_transient`: a transient failure leaves the work due
with a backoff; anything else is final and recorded with its reason.
"""

import requests
from redis.exceptions import LockError

from core.outbound import Unreachable
from wechat.clients import BUSY_ERRORS, TOKEN_ERRORS, WeChatApiError

# A token the platform refused (another process refreshed it; it expired early), the
# platform busy (-1, 45009), or no answer at all (errcode None: a timeout, a refused
# connection, a garbled answer).
TRANSIENT_ERRCODES = frozenset(TOKEN_ERRORS | BUSY_ERRORS | {None})


def is_transient(exc: BaseException) -> bool:
    """Whether the call that raised `exc` may succeed if tried again later."""
    if isinstance(exc, WeChatApiError):
        return exc.errcode in TRANSIENT_ERRCODES
    return isinstance(exc, Unreachable | requests.Timeout | requests.ConnectionError | TimeoutError)


def transient_answer(status: int) -> bool:
    """An HTTP status a webhook receiver may answer differently later (busy, down, limited)."""
    return status in (408, 425, 429) or status >= 500


def may_have_gone_out(exc: BaseException) -> bool:
    """Whether a failed call may all the same have been carried out by the platform: no
    answer came back (a read timeout) or it could not be read. The platform refusing (an
    errcode), the connection never opening or the access token not had (the call was never
    sent) means nothing was done. A sender whose call is not idempotent must not repeat
    such a call."""
    if isinstance(exc, WeChatApiError):
        if exc.errcode is not None or exc.token_failed:
            return False
        cause = exc.__cause__
        return cause is None or may_have_gone_out(cause)
    # A refused connection (ConnectTimeout included) or a lock not had: nothing was sent.
    return not isinstance(exc, requests.ConnectionError | LockError)


# PostgreSQL's deadlock_detected, serialization_failure and lock_not_available: the
# transaction lost a race to another (two drains of a workspace's lanes, a drain and a
# runner); the same work succeeds when run again.
RERUN_SQLSTATES = frozenset({"40P01", "40001", "55P03"})


def is_rerunnable(exc: BaseException) -> bool:
    """A database error that rolling back and running the same transaction again cures."""
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None) in RERUN_SQLSTATES
