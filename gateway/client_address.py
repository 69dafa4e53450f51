"""Who is on the other end: the socket peer, or the client a trusted proxy names for us."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def parse_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _is_trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(
    peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]
) -> str | None:
    """The client's address for rate limits, audit and ``X-Forwarded-For``.

    ``X-Forwarded-For`` is believed only when the socket peer is a trusted proxy, and then only
    as far as the chain stays within trusted proxies: it is read right to left (each proxy
    appends the address it saw), and the first hop that is not a trusted proxy is the client.
    Anything to its left was written by the client itself and could be forged. A malformed hop
    ends the walk at the last address we could vouch for.
    """
    if peer is None or not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    client = peer
    for hop in reversed(hops):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return client
        client = hop
        if not _is_trusted(hop, trusted):
            return hop
    return client
