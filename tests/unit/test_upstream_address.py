"""GATEWAY_UPSTREAM_URL as the upstream client reads it, and the targets built under it."""

from __future__ import annotations

import pytest

from gateway.upstream import UnsendableRequest, UpstreamAddress


def test_a_tcp_upstream_keeps_its_authority_as_the_host_header_and_its_base_path() -> None:
    address = UpstreamAddress.parse("http://127.0.0.1:3000/api/")

    assert (address.host, address.port, address.socket_path) == ("127.0.0.1", 3000, None)
    assert address.host_header == b"127.0.0.1:3000"
    assert address.origin == b"http://127.0.0.1:3000"
    assert address.target(b"/todos", b"select=id") == b"/api/todos?select=id"


def test_an_ipv6_upstream_connects_to_the_bare_address() -> None:
    address = UpstreamAddress.parse("http://[::1]:3000")

    assert (address.host, address.host_header) == ("::1", b"[::1]:3000")


def test_a_unix_socket_upstream_is_reached_as_localhost() -> None:
    address = UpstreamAddress.parse("unix:///run/postgrest.sock")

    assert address.socket_path == "/run/postgrest.sock"
    assert address.host_header == b"localhost"
    assert address.target(b"/todos") == b"/todos"
    assert str(address) == "unix:///run/postgrest.sock"


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pw@127.0.0.1:3000",
        "http://127.0.0.1:3000?x=1",
        "http://127.0.0.1:3000#x",
        "ftp://127.0.0.1",
        "unix://host/run/postgrest.sock",
        "unix:///run/../postgrest.sock",
        "unix:///run/postgrest.sock?x",
        "http://127.0.0.1:3000/a b",
    ],
)
def test_an_upstream_url_the_proxy_could_not_reach_safely_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"upstream|Unix socket"):
        UpstreamAddress.parse(url)


def test_a_query_byte_outside_visible_ascii_is_never_put_in_a_target() -> None:
    address = UpstreamAddress.parse("http://127.0.0.1:3000")

    with pytest.raises(UnsendableRequest):
        address.target(b"/todos", b"a=1 HTTP/1.1\r\nHost: evil")
