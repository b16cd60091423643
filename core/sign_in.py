"""How fast an account may be guessed at, counted in Redis so every web process agrees.

Two counts of failed sign-ins, both in a window that starts at the first failure:
- per account and client address: past `address_failures`, that address may not try that
  account again until the window ends (one guessing address is stopped; nobody else is);
- per account from anywhere: past `account_failures`, each address's attempts on the account
  go through a gate of their own, one per delay that doubles with each further failure up to
  `backoff_max_seconds`. Attempts from other addresses never take this address's opening, so
  a fresh address's first attempt always has its password checked.
A browser that signed in to the account before (a known device) skips both, so whoever shares
the user's address or floods the account never locks the user's own browser out.
"""

import hashlib
import logging
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignInPolicy:
    address_failures: int = 5
    account_failures: int = 10
    window_seconds: int = 900
    backoff_max_seconds: int = 60


@dataclass(frozen=True)
class Refusal:
    """Why an attempt is not checked, and in how many seconds it may be made again."""

    reason: str  # "address" or "account"
    retry_after: int


def account_key(email: str) -> str:
    """An account as the counters and the known-device cookie name it (no email in Redis)."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


class SignInGuard:
    def __init__(self, connection: Redis, prefix: str, policy: SignInPolicy):
        self._redis = connection
        self._prefix = f"{prefix}:sign-in"
        self.policy = policy

    def _pair(self, account: str, address: str) -> str:
        return f"{self._prefix}:pair:{account}:{address}"

    def _account(self, account: str) -> str:
        return f"{self._prefix}:account:{account}"

    def _gate(self, account: str, address: str) -> str:
        return f"{self._prefix}:gate:{account}:{address}"

    def check(self, account: str, address: str, *, known_device: bool) -> Refusal | None:
        """None when this attempt may check its password. Redis down refuses nobody: the
        per-address request limit (Flask-Limiter, in memory meanwhile) still holds."""
        try:
            return self._check(account, address, known_device)
        except RedisError as exc:
            log.warning("sign-in counters unavailable, attempt allowed: %s", exc)
            return None

    def _check(self, account: str, address: str, known_device: bool) -> Refusal | None:
        if known_device:
            return None
        pair, whole = self._pair(account, address), self._account(account)
        pair_failures, account_failures = (int(n or 0) for n in self._redis.mget(pair, whole))
        if pair_failures >= self.policy.address_failures:
            return Refusal("address", self._ttl(pair))
        if account_failures < self.policy.account_failures:
            return None
        excess = account_failures - self.policy.account_failures
        delay = min(2**excess, self.policy.backoff_max_seconds)
        gate = self._gate(account, address)
        # SET NX EX: one opening per address and delay, however many processes race for it.
        if self._redis.set(gate, 1, nx=True, ex=delay):
            return None
        return Refusal("account", self._ttl(gate))

    def _ttl(self, key: str) -> int:
        return max(int(self._redis.ttl(key)), 1)

    def failed(self, account: str, address: str) -> None:
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                for key in (self._pair(account, address), self._account(account)):
                    # Created with its expiry in the same transaction: no counter outlives its
                    # window, whatever happens to this process.
                    pipe.set(key, 0, nx=True, ex=self.policy.window_seconds)
                    pipe.incr(key)
                pipe.execute()
        except RedisError as exc:
            log.warning("sign-in failure not counted: %s", exc)

    def succeeded(self, account: str, address: str) -> None:
        """The address's mistakes are forgiven; the account's count runs out its window (a
        success must not reset what many addresses built up)."""
        try:
            self._redis.delete(self._pair(account, address))
        except RedisError as exc:
            log.warning("sign-in counter not cleared: %s", exc)
