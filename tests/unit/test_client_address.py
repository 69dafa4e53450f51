"""The client address: the socket peer, or what trusted proxies say, read right to left."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.asgi.client_address import (
    client_address,
    client_address_of,
    is_trusted,
    parse_networks,
)

PROXIES = parse_networks(("10.0.0.0/8", "fd00::/8"))


def test_without_trusted_proxies_forwarded_for_is_ignored() -> None:
    assert client_address("203.0.113.9", ["198.51.100.1"], ()) == "203.0.113.9"


def test_an_untrusted_peer_cannot_name_another_client() -> None:
    assert client_address("203.0.113.9", ["198.51.100.1"], PROXIES) == "203.0.113.9"


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        (["198.51.100.7"], "198.51.100.7"),
        # The client wrote the left part itself; only the hop our proxy appended counts.
        (["6.6.6.6, 198.51.100.7"], "198.51.100.7"),
        (["6.6.6.6", "198.51.100.7, 10.1.1.1"], "198.51.100.7"),
        (["198.51.100.7, 10.2.2.2, 10.1.1.1"], "198.51.100.7"),
        (["2001:db8::1, fd00::2"], "2001:db8::1"),
        # Every hop is a trusted proxy: the leftmost one is as far as we can see.
        (["10.3.3.3, 10.2.2.2"], "10.3.3.3"),
        # A malformed hop ends the walk at the last address we could vouch for.
        (["198.51.100.7, not-an-ip"], "10.0.0.1"),
        (["198.51.100.7, not-an-ip, 10.2.2.2"], "10.2.2.2"),
        ([], "10.0.0.1"),
    ],
)
def test_a_trusted_chain_is_read_right_to_left(forwarded_for: list[str], client: str) -> None:
    assert client_address("10.0.0.1", forwarded_for, PROXIES) == client


def test_no_peer_means_no_address() -> None:
    assert client_address(None, ["198.51.100.7"], PROXIES) is None


@pytest.mark.parametrize(
    ("forwarded_for", "client"),
    [
        (["203.0.113.7:51234"], "203.0.113.7"),
        (["[2001:db8::1]"], "2001:db8::1"),
        (["[2001:db8::1]:443"], "2001:db8::1"),
        # A trusted proxy that wrote its own port is still walked past.
        (["198.51.100.7, 10.1.1.1:8080"], "198.51.100.7"),
        (["[2001:db8::1]:443, [fd00::2]:8443"], "2001:db8::1"),
        (["6.6.6.6:1, 198.51.100.7:65535"], "198.51.100.7"),
    ],
)
def test_a_hop_may_carry_a_port_or_brackets(forwarded_for: list[str], client: str) -> None:
    assert client_address("10.0.0.1", forwarded_for, PROXIES) == client


@pytest.mark.parametrize(
    "hop",
    [
        "203.0.113.7:",
        "203.0.113.7:65536",
        "203.0.113.7:http",
        "203.0.113.7:-1",
        "203.0.113.7 :80",
        "[2001:db8::1",
        "2001:db8::1]",
        "[2001:db8::1]443",
        "[2001:db8::1]:",
        "[2001:db8::1]:99999",
        "[203.0.113.7]",
        "[203.0.113.7]:80",
        "[[2001:db8::1]]",
        "[]",
        "2001:db8::1:443:",
        "unknown",
        "",
    ],
)
def test_a_malformed_hop_with_a_port_or_brackets_ends_the_walk(hop: str) -> None:
    assert client_address("10.0.0.1", [f"198.51.100.7, {hop}, 10.2.2.2"], PROXIES) == "10.2.2.2"


def test_an_ipv4_mapped_peer_is_the_trusted_proxy_it_maps() -> None:
    assert is_trusted("::ffff:10.0.0.1", PROXIES)
    assert client_address("::ffff:10.0.0.1", ["198.51.100.7"], PROXIES) == "198.51.100.7"


def test_an_ipv4_mapped_hop_is_the_trusted_proxy_it_maps() -> None:
    forwarded_for = ["198.51.100.7, ::ffff:10.1.1.1"]
    assert client_address("10.0.0.1", forwarded_for, PROXIES) == "198.51.100.7"


def test_a_proxy_network_written_as_ipv4_mapped_still_trusts_ipv4_peers() -> None:
    mapped = parse_networks(("::ffff:10.0.0.0/104",))
    assert is_trusted("10.0.0.1", mapped)
    assert is_trusted("::ffff:10.0.0.1", mapped)
    assert not is_trusted("11.0.0.1", mapped)


@pytest.mark.parametrize("address", ["not-an-ip", "", "10.0.0.1:80", "[10.0.0.1]", "10.0.0.01"])
def test_only_an_ip_address_can_be_trusted(address: str) -> None:
    assert not is_trusted(address, PROXIES)


# Every spelling of one client is one client: a table in place of a property test (hypothesis is
# not a dependency). Each address is spelt every way a peer or a hop may spell it.
CLIENTS = ["198.51.100.7", "203.0.113.255", "2001:db8::1", "2001:db8:0:0:1::", "2606:4700::6810"]


def spellings(address: str, *, as_hop: bool) -> list[str]:
    """The ways to write ``address``; ports and brackets only where a hop may have them."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv4Address):
        plain = [address, f"::ffff:{address}", f"::FFFF:{address}"]
        ported = [f"{address}:443", f"[::ffff:{address}]:80"]
    else:
        plain = [address, address.upper(), ip.exploded, ip.exploded.upper()]
        ported = [f"[{ip.exploded}]", f"[{address}]:8443"]
    return list(dict.fromkeys([*plain, *ported] if as_hop else plain))


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [(spelling, address) for address in CLIENTS for spelling in spellings(address, as_hop=True)],
)
def test_every_spelling_of_a_forwarded_client_is_one_address(spelling: str, canonical: str) -> None:
    canonical = str(ipaddress.ip_address(canonical))
    assert client_address("10.0.0.1", [f"{spelling}, 10.1.1.1"], PROXIES) == canonical


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [(spelling, address) for address in CLIENTS for spelling in spellings(address, as_hop=False)],
)
def test_every_spelling_of_a_peer_is_one_address(spelling: str, canonical: str) -> None:
    canonical = str(ipaddress.ip_address(canonical))
    assert client_address(spelling, ["6.6.6.6"], PROXIES) == canonical
    assert client_address(spelling, [], ()) == canonical


def test_the_leftmost_trusted_proxy_is_returned_normalised() -> None:
    assert client_address("10.0.0.1", ["FD00:0::3, 10.2.2.2"], PROXIES) == "fd00::3"


def test_a_peer_that_is_not_an_ip_address_is_returned_as_it_is() -> None:
    assert client_address("testclient", ["198.51.100.7"], PROXIES) == "testclient"


@pytest.mark.parametrize("name", [b"x-forwarded-for", b"X-Forwarded-For", b"X-FORWARDED-FOR"])
def test_an_asgi_request_is_read_with_its_forwarded_for_field_in_any_case(name: bytes) -> None:
    scope = {"client": ("10.0.0.2", 5000), "headers": [(name, b"203.0.113.7")]}
    assert client_address_of(scope, parse_networks(("10.0.0.0/8",))) == "203.0.113.7"


def test_an_asgi_request_is_read_with_every_forwarded_for_field_in_order() -> None:
    scope = {
        "client": ("10.0.0.2", 5000),
        "headers": [(b"x-forwarded-for", b"198.51.100.4"), (b"x-forwarded-for", b"10.0.0.9")],
    }
    # The chain is 198.51.100.4, 10.0.0.9 (the second field continues the first).
    assert client_address_of(scope, parse_networks(("10.0.0.0/8",))) == "198.51.100.4"


def test_an_asgi_request_without_a_client_has_no_address() -> None:
    assert client_address_of({"headers": []}, parse_networks(("10.0.0.0/8",))) is None
