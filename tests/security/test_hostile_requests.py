"""Malformed and hostile HTTP/1.1 sent as raw bytes to a real gateway process (Granian).

Upstream is a recording fake PostgREST, so every test can say exactly what reached it. HTTP
clients normalise or refuse these requests, hence raw sockets.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.server import run_gateway
from tests.support.upstream import RecordingUpstream

CLOSE = b"Connection: close\r\n"


# Closes after each answer, so every raw exchange below reads until the gateway closes.
CLOSING_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


@dataclass
class Target:
    host: str
    port: int
    upstream: RecordingUpstream

    def exchange(self, raw: bytes, timeout: float = 5.0) -> tuple[bytes, float, bool]:
        """Send ``raw``; read until the server closes. Returns (answer, seconds, closed)."""
        started = time.monotonic()
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(raw)
            answer = b""
            try:
                while chunk := sock.recv(65536):
                    answer += chunk
            except TimeoutError:
                return answer, time.monotonic() - started, False
            except ConnectionResetError:
                pass
        return answer, time.monotonic() - started, True


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    upstream = RecordingUpstream(reply=CLOSING_OK).start()
    port = upstream.port
    folder = tmp_path_factory.mktemp("hostile")
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/gateway.db",
        "GATEWAY_KEYS_DIR": str(folder / "keys"),
        "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_UPSTREAM_READ_TIMEOUT": "2",
        "GATEWAY_BODY_IDLE_TIMEOUT": "2",
        "GATEWAY_COOKIE_SECURE": "false",
        "GATEWAY_AUTH_RATE_LIMIT": "100000",
    }
    with run_gateway(env, cwd=folder) as base_url:
        host, _, port_text = base_url.removeprefix("http://").partition(":")
        yield Target(host, int(port_text), upstream)
    upstream.close()


def reached(target: Target, before: int) -> list[bytes]:
    """Heads the fake upstream recorded since ``before``. No wait is needed: it records a head
    before it answers, and the gateway answers the client only after that (or without asking
    PostgREST at all)."""
    return target.upstream.heads[before:]


# --- framing: request smuggling ------------------------------------------------------------


def test_smuggling_with_content_length_and_transfer_encoding_forwards_one_reframed_request(
    gateway: Target,
) -> None:
    before = len(gateway.upstream.heads)
    smuggled = b"GET /rest/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    raw = (
        b"POST /rest/t HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n%s" % (len(body), body)
    )

    answer, _, closed = gateway.exchange(raw)

    heads = reached(gateway, before)
    # RFC 9112 section 6.1: Transfer-Encoding wins, and the connection is closed afterwards,
    # so the bytes after the chunked body are never read as a second request.
    assert answer.count(b"HTTP/1.1 ") == 1
    assert closed
    assert [head.split(b"\r\n")[0] for head in heads] == [b"POST /t HTTP/1.1"]
    assert b"content-length" not in heads[0].lower()


def test_smuggling_with_two_different_content_lengths_is_refused_before_upstream(
    gateway: Target,
) -> None:
    before = len(gateway.upstream.heads)
    for lengths in (b"Content-Length: 4\r\nContent-Length: 5\r\n", b"Content-Length: 4, 5\r\n"):
        answer, _, _ = gateway.exchange(
            b"POST /rest/t HTTP/1.1\r\nHost: x\r\n" + lengths + CLOSE + b"\r\nabcde"
        )
        assert status_of(answer) == 400

    assert reached(gateway, before) == []


@pytest.mark.parametrize(
    "encoding", [b"xchunked", b"identity", b"chunked, identity"], ids=lambda e: e.decode()
)
def test_smuggling_with_an_unknown_transfer_encoding_is_refused_before_upstream(
    gateway: Target, encoding: bytes
) -> None:
    before = len(gateway.upstream.heads)
    answer, _, _ = gateway.exchange(
        b"POST /rest/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
        + encoding
        + b"\r\nContent-Length: 5\r\n"
        + CLOSE
        + b"\r\n0\r\n\r\n"
    )

    assert status_of(answer) == 400
    assert reached(gateway, before) == []


def test_smuggling_with_whitespace_before_the_colon_is_refused_before_upstream(
    gateway: Target,
) -> None:
    before = len(gateway.upstream.heads)
    answer, _, _ = gateway.exchange(
        b"POST /rest/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n"
        + CLOSE
        + b"\r\n0\r\n\r\n"
    )

    assert status_of(answer) == 400
    assert reached(gateway, before) == []


def test_header_injection_with_obsolete_line_folding_is_refused_before_upstream(
    gateway: Target,
) -> None:
    before = len(gateway.upstream.heads)
    answer, _, _ = gateway.exchange(
        b"GET /rest/t HTTP/1.1\r\nHost: x\r\nX-A: a\r\n X-Forwarded-Host: evil\r\n"
        + CLOSE
        + b"\r\n"
    )

    assert status_of(answer) == 400
    assert reached(gateway, before) == []


@pytest.mark.parametrize("value", [b"a\rX-Forwarded-Host: evil", b"a\x00b"], ids=["bare-cr", "nul"])
def test_header_injection_with_a_bare_cr_or_nul_in_a_value_is_refused_before_upstream(
    gateway: Target, value: bytes
) -> None:
    before = len(gateway.upstream.heads)
    answer, _, _ = gateway.exchange(
        b"GET /rest/t HTTP/1.1\r\nHost: x\r\nX-A: " + value + b"\r\n" + CLOSE + b"\r\n"
    )

    assert status_of(answer) == 400
    assert reached(gateway, before) == []


def test_header_injection_with_a_bare_lf_cannot_plant_a_forwarding_header(
    gateway: Target,
) -> None:
    before = len(gateway.upstream.heads)
    answer, _, _ = gateway.exchange(
        b"GET /rest/t HTTP/1.1\r\nHost: x\r\nX-A: a\nX-Forwarded-Host: evil\nX-Real-IP: 6.6.6.6"
        b"\r\n" + CLOSE + b"\r\n"
    )

    heads = reached(gateway, before)
    if status_of(answer) != 400:  # Granian may read a bare LF as a line end (RFC 9112 2.2)
        assert len(heads) == 1
        assert b"evil" not in heads[0]
        assert b"6.6.6.6" not in heads[0]
        assert b"x-forwarded-host: x\r\n" in heads[0]


# --- request targets ---------------------------------------------------------------------


def test_an_absolute_uri_target_cannot_send_the_request_to_another_host(gateway: Target) -> None:
    before = len(gateway.upstream.heads)
    answer, _, _ = gateway.exchange(
        b"GET http://evil.example/rest/t HTTP/1.1\r\nHost: x\r\n" + CLOSE + b"\r\n"
    )

    heads = reached(gateway, before)
    assert status_of(answer) in (200, 400)
    for head in heads:
        assert head.startswith(b"GET /t HTTP/1.1\r\n")
        assert b"evil.example" not in head
        assert b"host: 127.0.0.1:" in head


@pytest.mark.parametrize(
    "host_line", [b"", b"Host: \r\n", b"Host:\r\n"], ids=["no-host", "empty-host", "bare-host"]
)
def test_an_http_1_1_request_without_a_host_is_refused_before_upstream(
    gateway: Target, host_line: bytes
) -> None:
    """Granian stands in an empty Host for a request that sent none; empty is missing."""
    before = len(gateway.upstream.heads)

    answer, _, _ = gateway.exchange(b"GET /rest/t HTTP/1.1\r\n" + host_line + CLOSE + b"\r\n")

    assert status_of(answer) == 400
    assert b'"invalid_host"' in answer
    assert reached(gateway, before) == []


def test_an_absolute_uri_target_to_auth_still_needs_credentials(gateway: Target) -> None:
    answer, _, _ = gateway.exchange(
        b"GET http://evil.example/auth/me HTTP/1.1\r\nHost: x\r\n" + CLOSE + b"\r\n"
    )

    assert status_of(answer) in (400, 401)


# --- sizes and time ----------------------------------------------------------------------


def test_a_megabyte_of_headers_is_refused_with_431_before_upstream(gateway: Target) -> None:
    before = len(gateway.upstream.heads)
    answer, _, _ = gateway.exchange(
        b"GET /rest/t HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n" + CLOSE + b"\r\n"
    )

    assert status_of(answer) == 431
    assert reached(gateway, before) == []


def test_five_hundred_header_fields_are_refused_with_431_before_upstream(gateway: Target) -> None:
    before = len(gateway.upstream.heads)
    fields = b"".join(b"X-F%d: a\r\n" % n for n in range(500))
    answer, _, _ = gateway.exchange(
        b"GET /rest/t HTTP/1.1\r\nHost: x\r\n" + fields + CLOSE + b"\r\n"
    )

    assert status_of(answer) == 431
    assert reached(gateway, before) == []


def test_a_64_kib_header_is_refused_before_it_reaches_postgrest(gateway: Target) -> None:
    """PostgREST hands every header to SQL (``request.headers``) on every request; a proxy
    should bound the header block (nginx: 8-32 KiB, Go: 1 MiB total, hyper's default ~400 KiB).
    Granian here forwards a single header of up to ~500 KB."""
    before = len(gateway.upstream.heads)
    answer, _, _ = gateway.exchange(
        b"GET /rest/t HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65_536 + b"\r\n" + CLOSE + b"\r\n"
    )

    assert status_of(answer) in (400, 431)
    assert reached(gateway, before) == []


@pytest.mark.parametrize("path", [b"/auth/login", b"/rest/t"])
def test_slowloris_a_stalled_request_body_is_timed_out_and_the_connection_freed(
    gateway: Target, path: bytes
) -> None:
    """A client that declares 100 bytes and sends 10 must not hold a connection (and, at the
    mount, a pooled upstream connection) open for as long as it likes.

    Three in a row: whether the server closed the connection used to depend on when Python's
    cyclic garbage collector ran (see ``_drop_tracebacks`` in the mount); one attempt caught
    that now and then, three in a row nearly always."""
    stalled = (
        b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n" + b'{"email": '
    )
    results = [gateway.exchange(stalled, timeout=8.0) for _ in range(3)]

    for answer, seconds, closed in results:
        assert closed, f"the connection was still open after {seconds:.1f} s: {answer[:60]!r}"
        assert answer == b"" or status_of(answer) in (400, 408, 413, 504)


def test_expect_100_continue_with_a_bogus_token_is_refused_before_the_body_is_read(
    gateway: Target,
) -> None:
    before = len(gateway.upstream.heads)
    with socket.create_connection((gateway.host, gateway.port), timeout=5) as sock:
        sock.sendall(
            b"PUT /rest/t HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bogus.token.here\r\n"
            b"Content-Type: application/json\r\nContent-Length: 1000000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk

    assert not answer.startswith(b"HTTP/1.1 100")
    assert status_of(answer) == 401
    assert b"www-authenticate: Bearer" in answer.lower().replace(b"bearer", b"Bearer")
    assert reached(gateway, before) == []


def test_spoofed_x_forwarded_headers_from_a_direct_client_never_reach_postgrest(
    gateway: Target,
) -> None:
    """docs/proxy.md: ``X-Forwarded-*`` from a client that is no trusted proxy is dropped."""
    before = len(gateway.upstream.heads)
    gateway.exchange(
        b"GET /rest/t HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n"
        b"X-Forwarded-Server: evil.example\r\nX-Forwarded-Ssl: on\r\nProxy-Secret: s\r\n"
        + CLOSE
        + b"\r\n"
    )

    (head,) = reached(gateway, before)
    assert b"6.6.6.6" not in head
    assert b"evil.example" not in head
    assert b"x-forwarded-ssl" not in head.lower()
    assert b"proxy-secret" not in head.lower()
