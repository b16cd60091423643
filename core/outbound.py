"""Requests to addresses someone typed in (a journey's webhook), kept off internal ones.

Only public addresses are reached: loopback, private, link-local, multicast, unspecified,
reserved and other non-global ones are refused, IPv4 and IPv6 alike (an IPv4-mapped IPv6
address counts as the IPv4 one; a 6to4 or Teredo address is refused unless the IPv4
addresses it carries are public, since a relay delivers there), unless the operator
allow-lists a network or a host name for an on-premise receiver. The host is resolved
and checked before the request, and again inside the connection, which connects to the
very address it checked (the Host header, TLS SNI and certificate check keep the host
name) and checks the socket's peer: a DNS answer that changes between the two
(rebinding) reaches nothing internal.

No redirect is followed (a 3xx is the answer), at most `max_bytes` of the answer are
read, within `timeout` seconds to connect and `timeout` more to read it all; http and
https only; no proxy from the environment.
"""

import ipaddress
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection

SCHEMES = ("http", "https")
TIMEOUT_SECONDS = 5.0
MAX_RESPONSE_BYTES = 64 * 1024
MAX_URL_LENGTH = 1024

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# Not global though some Pythons' is_global says so: IETF protocol assignments (RFC 6890,
# e.g. 192.0.0.8) and the IPv6 documentation range of RFC 9637.
NOT_GLOBAL = (ipaddress.ip_network("192.0.0.0/24"), ipaddress.ip_network("3fff::/20"))
# host, port -> the addresses it resolves to (a seam: tests make DNS change its answer)
Resolver = Callable[[str, int], list[str]]


class Refused(Exception):
    """The target is not an address Harpoon may reach; nothing was sent. The message,
    for the operator's log, names the address."""


class Unreachable(Exception):
    """The target could not be resolved, connected to or read from in time."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # as sent, not decompressed (a small gzip could not grow past the cap)
    truncated: bool  # the receiver sent more than the cap


def system_resolver(host: str, port: int) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 zone id is no part
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _embedded_ipv4(address: Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses a 6to4 or Teredo (server, client) address carries."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.sixtofour is not None:
            return (address.sixtofour,)
        if address.teredo is not None:
            return address.teredo
    return ()


def is_public(address: Address) -> bool:
    """Reachable on the internet: global, and not multicast, reserved, link-local,
    site-local or in NOT_GLOBAL; a 6to4 or Teredo address only when what it carries is."""
    return (
        address.is_global
        and not (
            address.is_multicast
            or address.is_reserved
            or address.is_link_local
            or getattr(address, "is_site_local", False)
            or any(address in network for network in NOT_GLOBAL)
        )
        and all(is_public(carried) for carried in _embedded_ipv4(address))
    )


class AllowList:
    """Networks (CIDR or single addresses) and host names an operator lets through."""

    def __init__(self, entries: Iterable[str] = ()):
        networks, hosts = [], set()
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        self.networks = tuple(networks)
        self.hosts = frozenset(hosts)

    def permits_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def permits(self, address: Address) -> bool:
        return is_public(address) or any(address in network for network in self.networks)


class Guard:
    """Which addresses of a host may be connected to."""

    def __init__(self, allow: AllowList, resolve: Resolver):
        self.allow, self.resolve = allow, resolve

    def addresses(self, host: str, port: int) -> list[str]:
        """The host's addresses, each one checked: Refused when any is not permitted."""
        literal = _address(host.strip("[]"))
        if literal is not None:
            found = [host.strip("[]")]
        else:
            try:
                found = self.resolve(host, port)
            except OSError as exc:
                raise Unreachable(f"{host}: {exc}") from None
            if not found:
                raise Unreachable(f"{host}: no address")
        if not self.allow.permits_host(host):
            for text in found:
                self.check(text, host)
        return found

    def check(self, text: str, host: str) -> None:
        address = _address(text)
        if address is None or not self.allow.permits(address):
            raise Refused(f"{host} resolves to {text}, not a public address")


class _GuardedConnection:
    """Connects only to an address its guard checked at this moment, and checks the peer."""

    guard: Guard

    def _new_conn(self) -> socket.socket:
        error: OSError | None = None
        for address in self.guard.addresses(self.host, self.port):
            try:
                sock = connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, f"connecting to {self.host} timed out") from exc
            except OSError as exc:
                error = exc
                continue
            if not self.guard.allow.permits_host(self.host):
                try:
                    self.guard.check(sock.getpeername()[0], self.host)
                except Refused:
                    sock.close()
                    raise
            return sock
        raise NewConnectionError(self, f"cannot connect to {self.host}: {error}")


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, guard: Guard):
        self.guard = guard
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        guard = self.guard

        class Plain(_GuardedConnection, HTTPConnection):
            pass

        class Secure(_GuardedConnection, HTTPSConnection):
            pass

        Plain.guard = Secure.guard = guard
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("Pool", (HTTPConnectionPool,), {"ConnectionCls": Plain}),
            "https": type("SecurePool", (HTTPSConnectionPool,), {"ConnectionCls": Secure}),
        }


# The operator's allow-list, set by the composition root, for checks at save time.
_configured: list[AllowList] = [AllowList()]


def configure(allow: Iterable[str]) -> None:
    _configured[0] = AllowList(allow)


def url_problem(url: str, allow: AllowList | None = None) -> str | None:
    """What is wrong with a configured address, checked without any network: an http(s)
    URL with a host, and no literal address that is not public unless allow-listed (by
    `allow`, else the configured allow-list). The request itself checks again."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH or url != url.strip():
        return "An http(s) address of at most 1024 characters."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "Not a valid address."
    if parts.scheme not in SCHEMES or not parts.hostname or any(c.isspace() for c in url):
        return "An http(s) address of at most 1024 characters."
    literal = _address(parts.hostname)
    if literal is not None and not (allow or _configured[0]).permits(literal):
        return "A private or local address: only public addresses can be reached."
    return None


def host_problem(host: str, port: int, resolve: Resolver | None = None) -> str | None:
    """What stops Harpoon from connecting to a host someone typed in (a workspace's mail
    server), under the operator's allow-list: a literal address that is not public; with
    `resolve` (a connection about to be made), a name that resolves to one. None: go on
    (a name that does not resolve is the connection's own error to report)."""
    allow = _configured[0]
    literal = _address(host.strip("[]"))
    if literal is None and resolve is None:
        return None
    try:
        Guard(allow, resolve or system_resolver).addresses(host, port)
    except Refused:
        return "A private or local address: only public addresses can be reached."
    except Unreachable:
        return None
    return None


class Outbound:
    """POSTs to configured addresses under the rules above."""

    def __init__(
        self,
        allow: Iterable[str] = (),
        *,
        timeout: float = TIMEOUT_SECONDS,
        max_bytes: int = MAX_RESPONSE_BYTES,
        resolve: Resolver = system_resolver,
    ):
        self.allow = AllowList(allow)
        self.guard = Guard(self.allow, resolve)
        self.timeout, self.max_bytes = timeout, max_bytes
        self.http = requests.Session()
        self.http.trust_env = False  # an environment proxy would connect for us, unchecked
        adapter = _GuardedAdapter(self.guard)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        problem = url_problem(url, self.allow)
        if problem:
            raise Refused(f"{url[:200]!r}: {problem}")
        parts = urlsplit(url)
        self.guard.addresses(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
        deadline = time.monotonic() + 2 * self.timeout
        try:
            with self.http.post(
                url,
                data=body,
                headers=headers,
                timeout=(self.timeout, self.timeout),
                allow_redirects=False,
                stream=True,
            ) as response:
                body, truncated = self._read(response, deadline)
        except requests.RequestException as exc:
            raise Unreachable(f"{parts.hostname}: {exc}") from None
        return Answer(response.status_code, body, truncated)

    def _read(self, response: requests.Response, deadline: float) -> tuple[bytes, bool]:
        """At most max_bytes of the body, within the deadline (a trickle does not hold us)."""
        read = bytearray()
        for chunk in response.raw.stream(8192, decode_content=False):
            read += chunk
            if len(read) > self.max_bytes:
                return bytes(read[: self.max_bytes]), True
            if time.monotonic() > deadline:
                raise Unreachable(f"{response.url}: the answer took too long")
        return bytes(read), False
