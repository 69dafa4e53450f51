"""Who is on the other end: the socket peer, or the client a trusted proxy names for us."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Final

from gateway.asgi.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# An X-Forwarded-For hop: an address, an IPv4 address with a port, or an IPv6 address in
# brackets, with or without a port (RFC 7239 section 6 spells nodes the same way).
_BRACKETED: Final = re.compile(r"\[(?P<address>[^\[\]]+)\](?::(?P<port>[0-9]{1,5}))?")
_IPV4_WITH_PORT: Final = re.compile(r"(?P<address>[0-9.]+):(?P<port>[0-9]{1,5})")


@lru_cache(maxsize=8)
def parse_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def is_trusted(address: str, networks: Sequence[Network]) -> bool:
    """Whether ``address`` (an IP address; IPv4-mapped IPv6 counts as its IPv4) is in ``networks``.

    Anything that is not an IP address is never trusted.
    """
    ip = _parse_address(address)
    return ip is not None and _within(ip, networks)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]
) -> str | None:
    """The client's address for rate limits, audit and ``X-Forwarded-For``.

    ``X-Forwarded-For`` is believed only when the socket peer is a trusted proxy, and then only
    as far as the chain stays within trusted proxies: it is read right to left (each proxy
    appends the address it saw), and the first hop that is not a trusted proxy is the client.
    Anything to its left was written by the client itself and could be forged. A malformed hop
    ends the walk at the last address we could vouch for.

    A hop may carry a port (``203.0.113.7:51234``, ``[2001:db8::1]:443``) or brackets
    (``[2001:db8::1]``); the port is dropped. The address returned is normalised (lower case,
    shortest IPv6 form, IPv4-mapped IPv6 as IPv4), so that one client has one spelling. A peer
    that is not an IP address at all (a Unix socket, a test client) is returned as it is.
    """
    if peer is None:
        return None
    client = _parse_address(peer)
    if client is None:
        return peer
    if not _within(client, trusted):
        return str(client)
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        ip = _parse_hop(hop)
        if ip is None:
            break
        client = ip
        if not _within(ip, trusted):
            break
    return str(client)


def client_address_of(scope: Scope, trusted: Sequence[Network]) -> str | None:
    """:func:`client_address` of an ASGI request: its socket peer and its X-Forwarded-For fields.

    The one way the mount, /auth and its rate limit tell who is calling. Header names are
    matched in any letter case: ASGI asks servers to lower them but does not promise it, and a
    field missed here would make every client behind the proxy share the proxy's address (one
    rate-limit bucket, one sign-in throttle key).
    """
    client = scope.get("client")
    forwarded = [
        value.decode("latin-1")
        for name, value in scope.get("headers", ())
        if len(name) == 15 and name.lower() == b"x-forwarded-for"
    ]
    return client_address(client[0] if client else None, forwarded, trusted)


# Cached: the same few peers ask again and again, and parsing showed up at ~7% of the proxy's
# CPU in the benchmark profile (docs/benchmarks.md). Both functions are pure.
@lru_cache(maxsize=4096)
def _within(ip: Address, networks: Sequence[Network]) -> bool:
    # ``ip`` is already unmapped; a network written in the IPv4-mapped form still matches.
    mapped = ipaddress.IPv6Address(f"::ffff:{ip}") if ip.version == 4 else None
    return any(ip in network or (mapped is not None and mapped in network) for network in networks)


@lru_cache(maxsize=4096)
def _parse_address(text: str) -> Address | None:
    """``text`` as an IP address, an IPv4-mapped IPv6 address as IPv4; None when it is not one."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _parse_hop(hop: str) -> Address | None:
    """The address an X-Forwarded-For hop names, its port dropped; None when it is malformed."""
    if match := _BRACKETED.fullmatch(hop):
        if not _valid_port(match["port"]) or ":" not in match["address"]:
            return None  # brackets hold an IPv6 address, nothing else
        return _parse_address(match["address"])
    if match := _IPV4_WITH_PORT.fullmatch(hop):
        if not _valid_port(match["port"]):
            return None
        ip = _parse_address(match["address"])
        return ip if isinstance(ip, ipaddress.IPv4Address) else None
    return _parse_address(hop)


def _valid_port(port: str | None) -> bool:
    return port is None or int(port) <= 65535
