"""What a client can make the PostgREST mount send upstream, through a real gateway process.

The configured upstream is a recording fake PostgREST; a second local server stands for every
other host the gateway can reach (the metadata service, a database's HTTP port, the gateway
itself) and must never receive a byte. Raw sockets: HTTP clients normalise these paths.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.test_hostile_requests import CLOSE, CLOSING_OK, Target, status_of
from tests.support.server import run_gateway
from tests.support.upstream import RecordingUpstream


@pytest.fixture(scope="module")
def other() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream(reply=CLOSING_OK).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream(reply=CLOSING_OK).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, other: RecordingUpstream, upstream: RecordingUpstream
) -> Iterator[Target]:
    port = upstream.port
    folder = tmp_path_factory.mktemp("boundary")
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{folder}/gateway.db",
        "GATEWAY_KEYS_DIR": str(folder / "keys"),
        "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{port}",
        "GATEWAY_UPSTREAM_READ_TIMEOUT": "2",
        "GATEWAY_COOKIE_SECURE": "false",
    }
    with run_gateway(env, cwd=folder) as base_url:
        host, _, port_text = base_url.removeprefix("http://").partition(":")
        yield Target(host, int(port_text), upstream)


def other_port(other: RecordingUpstream) -> bytes:
    return str(other.port).encode()


def get(gateway: Target, target: bytes) -> bytes:
    answer, _, _ = gateway.exchange(
        b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + CLOSE + b"\r\n"
    )
    return answer


def test_ssrf_an_encoded_slash_and_at_sign_cannot_send_the_request_to_another_host(
    gateway: Target, other: RecordingUpstream
) -> None:
    """The reproduction: curl --path-as-is 'http://GATEWAY/rest%2F@127.0.0.1:OTHER/latest'."""
    port = other_port(other)
    targets = [
        b"/rest%2F@127.0.0.1:" + port + b"/latest",
        b"/rest%2f@127.0.0.1:" + port + b"/latest",
        b"/rest/%2F@127.0.0.1:" + port + b"/latest",
        b"/rest%2F%2F127.0.0.1:" + port + b"/latest",
        b"/rest@127.0.0.1:" + port + b"/latest",
        b"/rest%40127.0.0.1:" + port + b"/latest",
        b"/rest/@127.0.0.1:" + port + b"/latest",
        b"/rest//127.0.0.1:" + port + b"/latest",
        b"/rest%5C%5C127.0.0.1:" + port + b"/latest",
        b"/rest%3F@127.0.0.1:" + port + b"/latest",
        b"/rest%23@127.0.0.1:" + port + b"/latest",
    ]

    before = len(gateway.upstream.heads)

    answers = {target: get(gateway, target) for target in targets}

    assert other.heads == []
    forwarded = gateway.upstream.heads[before:]
    for target, answer in answers.items():
        if status_of(answer) == 200:  # a path under the mount: the configured upstream's "ok"
            assert answer.endswith(b"\r\n\r\nok"), (target, answer)
        else:
            assert 400 <= status_of(answer) < 500, (target, answer)
            assert b"content-type: application/json" in answer.lower(), (target, answer)
    assert len(forwarded) == sum(status_of(a) == 200 for a in answers.values())
    for head in forwarded:
        assert head.split(b" ")[1].startswith(b"/@127.0.0.1:" + port), head


@pytest.mark.parametrize(
    "target",
    [
        b"/r%65st/x",
        b"/%72est/x",
        b"/rest%40x",
        b"/rest%2F%2Fx",
        b"/rest%2Fx",
        b"/REST/x",
        b"/rest%2e/x",
    ],
)
def test_a_path_whose_prefix_is_escaped_is_not_the_mounts_and_answers_404_json(
    gateway: Target, target: bytes
) -> None:
    before = len(gateway.upstream.heads)

    answer = get(gateway, target)

    assert status_of(answer) == 404, answer
    assert b"application/json" in answer.lower()
    assert gateway.upstream.heads[before:] == []


def test_an_upstream_failure_mid_answer_reaches_the_client_as_a_truncated_answer(
    gateway: Target, upstream: RecordingUpstream
) -> None:
    """No final chunk: an HTTP client cannot take the half answer for a whole one."""
    upstream.reply = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + b"%x\r\n" % 70_000 + b"[" + b"1," * 100
    )
    try:
        answer, _, closed = gateway.exchange(
            b"GET /rest/big HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10
        )
    finally:
        upstream.reply = CLOSING_OK

    assert closed
    assert status_of(answer) == 200
    assert not answer.endswith(b"0\r\n\r\n")
