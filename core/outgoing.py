"""The guard on outgoing requests to addresses a customer typed (docs/admin.md#outgoing-requests).

Webhook URLs, integration endpoints and the domain the admin's "check the
installation" fetches are typed by users. Without a guard they make Perezvon
fetch whatever its own network can reach: the database's admin port, a router,
the cloud's metadata service (blind SSRF). So every such request goes only to
public addresses:

* the host is resolved, and every address it resolves to that is loopback,
  private, link-local (the cloud metadata services among them), unique-local,
  multicast, unspecified, reserved or otherwise not globally routable is
  dropped -- IPv4 and IPv6 alike, an IPv4 address mapped into IPv6 judged as
  the IPv4 address it carries; when nothing is left the request is refused
  with :class:`AddressNotAllowed`;
* the check is made where the connection is opened (an aiohttp resolver,
  :class:`GuardedResolver`), on the very addresses it then connects to, so a
  name that resolves to a public address when checked and to a private one a
  moment later (DNS rebinding) gains nothing; a URL with an address instead
  of a name is checked before the request is sent (:class:`GuardedTransport`);
* a redirect is a new request to a new address and goes through the same
  check (pushes do not follow redirects at all).

An on-premise CRM in the customer's own network is reached by naming its
network in the allow-list: the setting ``outgoing_allow``, environment variable
``PEREZVON_OUTGOING_ALLOW`` (comma-separated addresses or networks, e.g.
``10.20.0.0/16,192.168.1.5``). The metadata addresses stay refused even then.

The allow-list is the process's deployment setting: :meth:`perezvon.core.app.Perezvon.start`
installs it with :func:`configure` (integrations build their HTTP clients in
their constructors, before any settings exist).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from perezvon.core.registry import DeliveryError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: the clouds' instance metadata services: never reachable, whatever the allow-list says
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(text)
    for text in (
        "169.254.169.254",  # AWS, GCP, Azure, DigitalOcean, OpenStack, Yandex Cloud
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)


class AddressNotAllowed(DeliveryError):
    """The request would go to an address outside the public internet; trying again cannot help."""

    def __init__(self, host: str, address: str, kind: str) -> None:
        where = address if _is_address(host) else f"{host} resolves to {address}"
        super().__init__(f"address not allowed: {where} ({kind})", retry=False)
        self.host = host
        self.address = address
        self.kind = kind

    def __reduce__(self) -> tuple[Any, ...]:  # a job's failure may be pickled into its result
        return (type(self), (self.host, self.address, self.kind))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def parse_allow_list(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses or networks (``10.0.0.0/8``, ``192.168.1.5``, ``fd12::/64``); raises ValueError on a bad one."""
    networks = []
    for entry in entries:
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"outgoing allow-list: {entry!r} is not an IP address or network") from None
    return tuple(networks)


_allowed: tuple[Network, ...] = ()


def configure(allow: Iterable[str]) -> None:
    """Install the process's allow-list (the deployment setting ``outgoing_allow``)."""
    global _allowed
    _allowed = parse_allow_list(allow)


def allowed_networks() -> tuple[Network, ...]:
    return _allowed


def unmapped(address: Address) -> Address:
    """The IPv4 address an IPv6 address carries and is delivered to, else the address itself.

    ``::ffff:10.0.0.1`` (IPv4-mapped) is 10.0.0.1 to the socket; ``64:ff9b::a00:1`` (NAT64)
    and ``2002:a00:1::`` (6to4) reach 10.0.0.1 through a gateway.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.sixtofour is not None:
            return address.sixtofour
    return address


def refusal(address: Address) -> str | None:
    """Why a connection to ``address`` is refused (a short English kind), or None when it may go."""
    address = unmapped(address)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if any(address in network for network in _allowed):
        return None
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv6Address) and (address in _UNIQUE_LOCAL or address in _SITE_LOCAL):
        return "a unique-local address"
    if address.is_private or any(address in network for network in _ALSO_PRIVATE):
        return "a private address"
    if address.is_reserved or not address.is_global or any(address in network for network in _NOT_PUBLIC):
        return "a reserved address"
    return None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")
#: private by RFC, though older Pythons' ``is_private`` does not know them
_ALSO_PRIVATE = tuple(ipaddress.ip_network(text) for text in ("192.0.0.0/24", "64:ff9b:1::/48"))
#: not on the public internet: shared address space (carrier-grade NAT), benchmarking, discard, documentation
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(text) for text in ("100.64.0.0/10", "198.18.0.0/15", "100::/64", "2001:db8::/32")
)


def check_literal(host: str) -> None:
    """Refuse ``host`` when it is an address (not a name) that may not be reached."""
    refused = _literal_refusal(host, _allowed)
    if refused is not None:
        raise AddressNotAllowed(host, *refused)


@functools.lru_cache(maxsize=4096)
def _literal_refusal(host: str, allowed: tuple[Network, ...]) -> tuple[str, str] | None:
    # every push asks this about its host: the answer is kept per host and allow-list (8 µs -> under 1 µs)
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None  # a name: its addresses are checked where the connection is opened
    reason = refusal(address)
    return None if reason is None else (str(unmapped(address)), reason)


async def check_before_proxy(host: str, port: int) -> None:
    """Refuse ``host`` when it resolves here to addresses none of which may be reached.

    For a request through a proxy, which resolves the name itself: a check made
    here, before the request, is the best that can be done there. A name that
    does not resolve here is left to the proxy (behind a proxy, names often
    resolve only there); an address in the URL is always checked.
    """
    check_literal(host)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return
    _reachable(host, [str(info[4][0]) for info in infos])


def _reachable(host: str, addresses: list[str]) -> list[str]:
    kept, first_refused = [], None
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])
        reason = refusal(address)
        if reason is None:
            kept.append(text)
        elif first_refused is None:
            first_refused = (str(unmapped(address)), reason)
    if not kept and first_refused is not None:
        raise AddressNotAllowed(host, *first_refused)
    return kept


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses :func:`refusal` lets through.

    aiohttp connects to exactly the addresses a resolver returns, so what was
    checked is what is connected to.
    """

    def __init__(self) -> None:
        # the system resolver (getaddrinfo in a thread, /etc/hosts included); it holds nothing to close, which
        # matters: aiohttp closes only a resolver it made itself
        self._resolver = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._resolver.resolve(host, port, family)
        kept = set(_reachable(host, [result["host"] for result in results]))
        return [result for result in results if result["host"] in kept]

    async def close(self) -> None:
        await self._resolver.close()


class GuardedTransport(httpx.AsyncBaseTransport):
    """Refuses a URL whose host is a forbidden address before it reaches the connection pool.

    (aiohttp does not ask its resolver about an address, only about a name.)
    With ``resolve`` the name is resolved and checked here too: for requests that
    go through a proxy, whose connections are to the proxy.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, *, resolve: bool = False) -> None:
        self.inner = inner
        self.resolve = resolve

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if self.resolve:
            await check_before_proxy(host, request.url.port or (443 if request.url.scheme == "https" else 80))
        else:
            check_literal(host)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def find_refusal(exc: BaseException | None) -> AddressNotAllowed | None:
    """The :class:`AddressNotAllowed` behind an HTTP client's error, if that is what it was."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, AddressNotAllowed):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "os_error", None)
    return None


def describe(refused: AddressNotAllowed) -> dict[str, Any]:
    """The values of the admin's message about a refused address."""
    return {"host": refused.host, "address": refused.address}
