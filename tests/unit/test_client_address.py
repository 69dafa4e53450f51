"""The client address: the socket peer, or what trusted proxies say, read right to left."""

from __future__ import annotations

import pytest

from gateway.client_address import client_address, parse_networks

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
