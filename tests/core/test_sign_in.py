"""The sign-in counters on their own: windows, the doubling and bounded gates, forgiveness."""

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


def test_each_address_has_its_own_gate_that_doubles_up_to_the_bound():
    g = guard()
    account = account_key("someone@example.com")
    for n in range(POLICY.account_failures):
        g.failed(account, f"192.0.2.{n}")
    assert g.check(account, "198.51.100.1", known_device=False) is None  # through its gate
    assert g._redis.ttl(f"test:sign-in:gate:{account}:198.51.100.1") == 1
    for n in range(10):
        g.failed(account, f"192.0.2.{n}")
    assert g.check(account, "198.51.100.2", known_device=False) is None
    refusal = g.check(account, "198.51.100.2", known_device=False)
    assert refusal.reason == "account" and refusal.retry_after <= POLICY.backoff_max_seconds
    assert g._redis.ttl(f"test:sign-in:gate:{account}:198.51.100.2") == POLICY.backoff_max_seconds
    assert g.check(account, "198.51.100.3", known_device=False) is None  # a fresh address
    assert g.check(account, "198.51.100.2", known_device=True) is None


def test_an_attack_from_many_addresses_never_takes_a_fresh_address_s_opening():
    g = guard()
    account = account_key("someone@example.com")
    for round_ in range(3):
        for n in range(20):
            if g.check(account, f"192.0.2.{n}", known_device=False) is None:
                g.failed(account, f"192.0.2.{n}")
        assert g.check(account, f"198.51.100.{round_}", known_device=False) is None


def test_a_success_forgives_the_address_but_not_the_account():
    g = guard()
    account = account_key("someone@example.com")
    for _ in range(POLICY.address_failures):
        g.failed(account, "203.0.113.7")
    assert g.check(account, "203.0.113.7", known_device=False).reason == "address"
    g.succeeded(account, "203.0.113.7")
    assert g.check(account, "203.0.113.7", known_device=False) is None
    assert int(g._redis.get("test:sign-in:account:" + account)) == POLICY.address_failures


def test_a_known_device_is_not_stopped_by_failures_from_its_address():
    g = guard()
    account = account_key("someone@example.com")
    for _ in range(POLICY.account_failures):
        g.failed(account, "203.0.113.7")
    assert g.check(account, "203.0.113.7", known_device=False).reason == "address"
    assert g.check(account, "203.0.113.7", known_device=True) is None
