"""What the client of the gateway sees when PostgREST misbehaves, through the real front door,
mount and upstream client, to a scripted raw-socket upstream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.support.front_door import Door, door_for
from tests.support.upstream import HANG, ScriptedUpstream
from tests.support.waiting import wait_for

READ_TIMEOUT = 0.3


@pytest.fixture
def upstream() -> Iterator[list[ScriptedUpstream]]:
    servers: list[ScriptedUpstream] = []
    yield servers
    for server in servers:
        server.close()


def door_to(servers: list[ScriptedUpstream], reply: bytes | None) -> Door:
    servers.append(ScriptedUpstream(lambda *_: reply).start())
    return door_for(servers[-1].url, upstream_read_timeout=READ_TIMEOUT)


def code_of(body: bytes) -> str:
    code: str = json.loads(body)["code"]
    return code


def test_postgrest_silent_before_its_answer_gives_504(upstream: list[ScriptedUpstream]) -> None:
    answer = door_to(upstream, HANG).request(b"/rest/todos")

    assert answer.status == 504
    assert code_of(answer.body) == "upstream_timeout"


def test_postgrest_silent_mid_body_gives_a_truncated_answer(
    upstream: list[ScriptedUpstream],
) -> None:
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n[1,2,\r\n"

    answer = door_to(upstream, reply).request(b"/rest/todos")

    assert answer.status == 200
    assert answer.starts == 1
    assert answer.complete is False  # no last body message: the server cuts the connection


def test_an_answer_that_is_not_http_gives_502(upstream: list[ScriptedUpstream]) -> None:
    answer = door_to(upstream, b"220 smtp.example ESMTP\r\n").request(b"/rest/todos")

    assert answer.status == 502
    assert code_of(answer.body) == "upstream_unavailable"


def test_an_upgrade_from_postgrest_gives_502(upstream: list[ScriptedUpstream]) -> None:
    reply = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"

    answer = door_to(upstream, reply).request(b"/rest/todos")

    assert answer.status == 502


def test_interim_answers_never_reach_the_client(upstream: list[ScriptedUpstream]) -> None:
    reply = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}"
    )

    answer = door_to(upstream, reply).request(
        b"/rest/todos",
        method="POST",
        headers=[(b"host", b"gateway.example"), (b"content-length", b"2")],
        body=b"{}",
    )

    assert (answer.status, answer.body) == (201, b"{}")
    assert answer.header(b"link") is None


def test_a_head_answer_reaches_the_client_without_a_body(
    upstream: list[ScriptedUpstream],
) -> None:
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 9000\r\nContent-Range: 0-9/*\r\n\r\n"

    answer = door_to(upstream, reply).request(b"/rest/todos", method="HEAD")

    assert (answer.status, answer.body, answer.complete) == (200, b"", True)
    assert answer.header(b"content-length") == b"9000"


def test_a_client_that_stops_reading_is_cut_after_the_body_idle_timeout(
    upstream: list[ScriptedUpstream],
) -> None:
    big = b"[" + b"1," * 500_000 + b"1]"
    upstream.append(
        ScriptedUpstream(
            lambda *_: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big
        ).start()
    )
    door = door_for(upstream[-1].url, body_idle_timeout=0.3)

    started = time.monotonic()
    answer = door.request(b"/rest/todos", stops_reading=True)

    assert 0.3 <= time.monotonic() - started < 5  # not held for as long as the client waits
    assert (answer.status, answer.complete) == (200, False)  # the connection is cut
    # The upstream connection, its answer unread, was closed, not kept.
    wait_for(lambda: upstream[-1].finished == 1, 5, "the upstream connection closing")
