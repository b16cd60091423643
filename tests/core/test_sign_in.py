"""The sign-in counters on their own: windows, the doubling and bounded gate, forgiveness."""

import fakeredis

from core.sign_in import SignInGuard, SignInPolicy, account_key

POLICY = SignInPolicy(address_failures=3, account_failures=4, backoff_max_seconds=8)


def guard() -> SignInGuard:
    return SignInGuard(fakeredis.FakeRedis(), "test", POLICY)


def test_every_counter_expires_with_its_window():
    g = guard()
    account = account_key(" Someone@Example.com ")
    assert account == account_key("someone@example.com")
    g.failed(account, "203.0.113.7")
    keys = g._redis.keys("test:sign-in:*")
    assert len(keys) == 2
    assert all(0 < g._redis.ttl(key) <= POLICY.window_seconds for key in keys)


def test_the_gate_doubles_and_never_waits_longer_than_the_bound():
    g = guard()
    account = account_key("someone@example.com")
    for n in range(POLICY.account_failures + 10):
        g.failed(account, f"192.0.2.{n}")
    assert g.check(account, "198.51.100.1", known_device=False) is None  # through the gate
    refusal = g.check(account, "198.51.100.2", known_device=False)
    assert refusal.reason == "account" and refusal.retry_after <= POLICY.backoff_max_seconds
    assert g._redis.ttl("test:sign-in:gate:" + account) == POLICY.backoff_max_seconds
    assert g.check(account, "198.51.100.3", known_device=True) is None


def test_a_success_forgives_the_address_but_not_the_account():
    g = guard()
    account = account_key("someone@example.com")
    for _ in range(POLICY.address_failures):
        g.failed(account, "203.0.113.7")
    assert g.check(account, "203.0.113.7", known_device=True).reason == "address"
    g.succeeded(account, "203.0.113.7")
    assert g.check(account, "203.0.113.7", known_device=False) is None
    assert int(g._redis.get("test:sign-in:account:" + account)) == POLICY.address_failures
