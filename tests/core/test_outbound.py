"""Outbound requests to configured addresses: internal addresses refused before the
request and again at connect time (DNS rebinding), no redirects, a capped answer, a
short timeout, and an allow-list for on-premise receivers."""

import time

import pytest

from core import outbound
from core.outbound import Outbound, Refused, Unreachable, url_problem
from tests.webhook_receiver import SLOW_SECONDS

PUBLIC = "93.184.215.14"
LOOPBACK = ("127.0.0.1/32",)


def post(client: Outbound, url: str):
    return client.post(url, b'{"hello": 1}', {"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.9.9.9",
        "localhost",  # a name that resolves to loopback
        "[::1]",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "2130706433",  # 127.0.0.1 written as a number
    ],
)
def test_loopback_is_refused_and_nothing_is_sent(receiver, host):
    with pytest.raises(Refused):
        post(Outbound(), receiver.url("/ok", host=host))
    assert receiver.received == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.8/hook",
        "http://172.16.5.4/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/hook",
        "http://224.0.0.1/hook",
        "http://240.0.0.1/hook",
        "http://[fd00::1]/hook",
        "http://[fe80::1]/hook",
        "http://[ff02::1]/hook",
        "http://[::]/hook",
    ],
)
def test_private_link_local_multicast_and_reserved_addresses_are_refused(url):
    started = time.monotonic()
    with pytest.raises(Refused):
        post(Outbound(), url)
    assert time.monotonic() - started < 1  # refused before any connection attempt


@pytest.mark.parametrize(
    "host",
    [
        "[2002:7f00:1::]",  # 6to4 carrying 127.0.0.1
        "[2002:a9fe:a9fe::]",  # 6to4 carrying the metadata address 169.254.169.254
        "[2002:a00:1::]",  # 6to4 carrying 10.0.0.1
        "[2001:0:5db8:d70e:0:fbff:80ff:fffe]",  # Teredo, client 127.0.0.1
        "192.0.0.8",  # IETF protocol assignments, 192.0.0.0/24
        "192.0.0.9",
        "192.0.0.170",
        "[3fff::1]",  # IPv6 documentation
    ],
)
def test_addresses_carrying_an_internal_one_or_not_global_are_refused(host):
    assert url_problem(f"http://{host}/hook") is not None
    with pytest.raises(Refused):
        post(Outbound(), f"http://{host}/hook")
    with pytest.raises(Refused):  # resolved from a name too
        post(Outbound(resolve=lambda name, port: [host.strip("[]")]), "http://hooks.example.com/x")


def test_a_6to4_address_carrying_a_public_one_is_public():
    assert url_problem("http://[2002:5db8:d70e::1]/hook") is None  # carries 93.184.215.14


def test_a_name_resolving_to_a_private_address_among_public_ones_is_refused(receiver):
    client = Outbound(resolve=lambda host, port: [PUBLIC, "10.1.2.3"])
    with pytest.raises(Refused):
        post(client, "http://hooks.example.com/x")


def test_dns_rebinding_between_the_check_and_the_connection_is_refused(receiver):
    answers = iter([[PUBLIC], ["127.0.0.1"]])  # public when checked, loopback at connect

    client = Outbound(resolve=lambda host, port: next(answers))
    with pytest.raises(Refused, match=r"127\.0\.0\.1"):
        post(client, receiver.url("/ok", host="rebind.example.com"))
    assert receiver.received == []


def test_an_allow_listed_receiver_gets_the_post(receiver):
    answer = post(Outbound(LOOPBACK), receiver.url("/ok"))
    assert (answer.status, answer.body, answer.truncated) == (200, b"ok", False)
    (received,) = receiver.received
    assert received.body == b'{"hello": 1}'


def test_an_allow_listed_host_name_may_resolve_to_a_private_address(receiver):
    client = Outbound(("crm.internal",), resolve=lambda host, port: ["127.0.0.1"])
    answer = post(client, receiver.url("/ok", host="crm.internal"))
    assert answer.status == 200
    assert receiver.received[0].headers["Host"] == f"crm.internal:{receiver.port}"


def test_a_redirect_is_not_followed(receiver):
    answer = post(Outbound(LOOPBACK), receiver.url("/redirect"))
    assert answer.status == 302
    assert receiver.paths() == ["/redirect"]


def test_an_oversized_answer_is_cut_at_the_cap(receiver):
    answer = post(Outbound(LOOPBACK, max_bytes=1000), receiver.url("/huge"))
    assert (answer.status, len(answer.body), answer.truncated) == (200, 1000, True)


def test_a_slow_receiver_times_out(receiver):
    started = time.monotonic()
    with pytest.raises(Unreachable):
        post(Outbound(LOOPBACK, timeout=0.5), receiver.url("/slow"))
    assert time.monotonic() - started < SLOW_SECONDS


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://crm.example/hook", None),
        ("http://8.8.8.8:8080/x", None),
        ("ftp://crm.example/x", "An http(s) address of at most 1024 characters."),
        ("https:///nohost", "An http(s) address of at most 1024 characters."),
        ("https://crm.example/" + "x" * 1024, "An http(s) address of at most 1024 characters."),
        ("http://crm.example:99999/", "Not a valid address."),
        ("http://10.0.0.8/x", "A private or local address: only public addresses can be reached."),
        ("http://[::1]/x", "A private or local address: only public addresses can be reached."),
    ],
)
def test_an_address_is_checked_when_saved(url, problem):
    assert url_problem(url) == problem


def test_an_allow_listed_network_may_be_saved():
    outbound.configure(("10.0.0.0/8",))
    try:
        assert url_problem("http://10.0.0.8/x") is None
        assert url_problem("http://192.168.0.8/x") is not None
    finally:
        outbound.configure(())
