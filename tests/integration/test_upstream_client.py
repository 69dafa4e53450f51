"""The upstream client against a raw-socket upstream, for what PostgREST never does on its own:
interim answers, garbage, a close mid-body or between requests, silence, an upgrade.
(tests/e2e/test_upstream_postgrest.py runs the same client against the real PostgREST.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from gateway.upstream import (
    UnsendableRequest,
    UpstreamAddress,
    UpstreamClient,
    UpstreamClosed,
    UpstreamProtocolError,
)
from tests.support.upstream import CLOSE, HANG, ScriptedUpstream

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
HOST = [(b"host", b"upstream")]
Handler = Callable[[int, int, bytes, bytes], bytes | tuple[bytes, ...] | None]


@pytest.fixture
def script() -> Iterator[Callable[[Handler], ScriptedUpstream]]:
    servers: list[ScriptedUpstream] = []

    def start(handler: Handler) -> ScriptedUpstream:
        servers.append(ScriptedUpstream(handler).start())
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def client_for(server: ScriptedUpstream, **options: float) -> UpstreamClient:
    return UpstreamClient(
        UpstreamAddress.parse(server.url),
        pool_size=int(options.get("pool_size", 4)),
        connect_timeout=options.get("connect_timeout", 5.0),
        read_timeout=options.get("read_timeout", 5.0),
    )


async def get(client: UpstreamClient, method: bytes = b"GET") -> tuple[int, bytes]:
    async with client.request(method, b"/x", HOST) as answer:
        return answer.status, await answer.read()


async def body_of(*chunks: bytes) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_interim_1xx_answers_are_skipped_and_the_final_answer_is_returned(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(
        lambda *_: (
            b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" + OK
        )
    )
    client = client_for(server)

    async with client.request(b"GET", b"/x", HOST) as answer:
        assert (answer.status, await answer.read()) == (200, b"ok")
        assert answer.headers == [(b"Content-Length", b"2")]
    assert await get(client) == (200, b"ok")
    assert server.connections == 1
    await client.close()


async def test_the_header_block_comes_back_in_order_with_case_and_duplicates(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(
        lambda *_: (
            b"HTTP/1.1 200 OK\r\nX-B: 1\r\nset-cookie: a=1\r\nX-A: 2\r\n"
            b"Set-Cookie: b=2\r\nContent-Length: 0\r\n\r\n"
        )
    )
    client = client_for(server)

    async with client.request(b"GET", b"/x", HOST) as answer:
        headers = answer.headers

    assert headers == [
        (b"X-B", b"1"),
        (b"set-cookie", b"a=1"),
        (b"X-A", b"2"),
        (b"Set-Cookie", b"b=2"),
        (b"Content-Length", b"0"),
    ]
    await client.close()


async def test_a_close_mid_body_is_an_error_never_a_short_answer(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(
        lambda *_: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nten bytes!"
    )
    client = client_for(server)

    async with client.request(b"GET", b"/x", HOST) as answer:
        assert answer.status == 200
        with pytest.raises(UpstreamClosed):
            await answer.read()
    assert client.open_connections == 0
    await client.close()


async def test_a_close_mid_chunked_body_is_an_error(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(
        lambda *_: (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"5\r\nhello\r\n"
        )
    )
    client = client_for(server)

    async with client.request(b"GET", b"/x", HOST) as answer:
        with pytest.raises(UpstreamClosed):
            await answer.read()
    await client.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n",
    ],
)
async def test_an_answer_that_is_not_http_is_a_protocol_error(
    script: Callable[[Handler], ScriptedUpstream], garbage: bytes
) -> None:
    server = script(lambda *_: garbage)
    client = client_for(server)

    with pytest.raises(UpstreamProtocolError):
        await get(client)
    assert client.open_connections == 0
    await client.close()


async def test_an_upgrade_answer_is_refused(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(
        lambda *_: (
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
        )
    )
    client = client_for(server)

    with pytest.raises(UpstreamProtocolError):
        await get(client)
    await client.close()


async def test_silence_before_the_head_is_a_timeout_after_the_read_timeout(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(lambda *_: HANG)
    client = client_for(server, read_timeout=0.2)

    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await get(client)
    assert 0.2 <= asyncio.get_running_loop().time() - started < 2.0
    assert client.open_connections == 0
    await client.close()


async def test_silence_mid_body_is_a_timeout(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    def handler(connection: int, request: int, head: bytes, body: bytes) -> bytes | None:
        return b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfive!"

    server = script(handler)
    client = client_for(server, read_timeout=0.2)

    async with client.request(b"GET", b"/x", HOST) as answer:
        with pytest.raises(TimeoutError):
            await answer.read()
    await client.close()


async def test_the_pool_wait_counts_against_the_connect_timeout(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(lambda *_: OK)
    client = client_for(server, pool_size=1, connect_timeout=0.2)

    async with client.request(b"GET", b"/x", HOST):
        with pytest.raises(TimeoutError):
            await get(client)
    assert await get(client) == (200, b"ok")
    assert server.connections == 1
    await client.close()


async def test_the_pool_never_opens_more_connections_than_its_size(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(lambda *_: OK)
    client = client_for(server, pool_size=2)

    answers = await asyncio.gather(*(get(client) for _ in range(20)))

    assert answers == [(200, b"ok")] * 20
    assert server.connections <= 2
    await client.close()


def stale_after_first(connection: int, request: int, head: bytes, body: bytes) -> bytes | None:
    """Every connection answers one request, then closes at the next without a word: what an
    upstream's idle timeout does to a pooled connection at the worst moment."""
    return OK if request == 1 else CLOSE


async def test_a_get_on_a_pooled_connection_that_died_is_sent_again_once(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(stale_after_first)
    client = client_for(server)
    assert await get(client) == (200, b"ok")

    assert await get(client) == (200, b"ok")

    # The second GET went up twice: on the stale connection, then on a new one.
    assert [h.split(b"\r\n")[0] for h in server.heads] == [b"GET /x HTTP/1.1"] * 3
    assert server.connections == 2
    await client.close()


@pytest.mark.parametrize("method", [b"POST", b"PATCH", b"DELETE"])
async def test_a_post_patch_or_delete_is_never_sent_twice(
    script: Callable[[Handler], ScriptedUpstream], method: bytes
) -> None:
    server = script(stale_after_first)
    client = client_for(server)
    assert await get(client) == (200, b"ok")

    with pytest.raises(UpstreamClosed):
        await get(client, method)

    assert [h.split(b" ")[0] for h in server.heads] == [b"GET", method]
    await client.close()


async def test_a_request_with_a_body_is_never_sent_twice(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(stale_after_first)
    client = client_for(server)
    assert await get(client) == (200, b"ok")

    with pytest.raises(UpstreamClosed):
        async with client.request(
            b"PUT", b"/x", [*HOST, (b"content-length", b"2")], body_of(b"{}")
        ):
            pass

    assert len(server.heads) == 2
    await client.close()


async def test_a_failure_on_a_new_connection_is_not_retried(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(lambda *_: CLOSE)
    client = client_for(server)

    with pytest.raises(UpstreamClosed):
        await get(client)

    assert len(server.heads) == 1
    await client.close()


async def test_a_connection_closed_by_the_upstream_while_idle_is_never_reused(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(
        lambda *_: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    )
    client = client_for(server)

    assert await get(client) == (200, b"ok")
    assert await get(client) == (200, b"ok")

    assert server.connections == 2
    assert len(server.heads) == 2  # no request went to a closed connection
    await client.close()


async def test_a_head_answer_has_no_body_whatever_its_content_length(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(
        lambda _c, _r, head, _b: (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" if head.startswith(b"HEAD") else OK
        )
    )
    client = client_for(server)

    async with client.request(b"HEAD", b"/x", HOST) as answer:
        assert (answer.status, answer.content_length, await answer.read()) == (200, 5000, b"")
    assert await get(client) == (200, b"ok")
    await client.close()


@pytest.mark.parametrize("status", [204, 304])
async def test_a_204_or_304_has_no_body_and_keeps_the_connection(
    script: Callable[[Handler], ScriptedUpstream], status: int
) -> None:
    server = script(
        lambda _c, request, _h, _b: (
            b'HTTP/1.1 %d X\r\nETag: "1"\r\n\r\n' % status if request == 1 else OK
        )
    )
    client = client_for(server)

    assert await get(client) == (status, b"")
    assert await get(client) == (200, b"ok")
    assert server.connections == 1
    await client.close()


async def test_a_body_is_streamed_chunked_when_asked(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(lambda *_: OK)
    client = client_for(server)
    pieces = [b"a" * 70_000, b"b" * 3, b"c" * 100_000]

    async with client.request(b"POST", b"/x", HOST, body_of(*pieces), chunked=True) as answer:
        assert await answer.read() == b"ok"

    assert b"\r\ntransfer-encoding: chunked" in server.heads[0]
    assert server.bodies == [b"".join(pieces)]
    await client.close()


@pytest.mark.parametrize(
    "target", [b"/x y", b"/x\r\nHost: evil", b"/x\nX: 1", b"/x\x00", b"/x\x7f", b"/x\xc3\xa9"]
)
async def test_a_target_that_could_split_the_request_line_is_never_sent(
    script: Callable[[Handler], ScriptedUpstream], target: bytes
) -> None:
    server = script(lambda *_: OK)
    client = client_for(server)

    with pytest.raises(UnsendableRequest):
        client.address.target(target)
    with pytest.raises(UnsendableRequest):
        async with client.request(b"GET", target, HOST):
            pass

    assert server.connections == 0
    await client.close()


@pytest.mark.parametrize(
    "header",
    [
        (b"x-a", b"1\r\nHost: evil"),
        (b"x-a", b"1\nX-B: 2"),
        (b"x-a", b"1\rX-B: 2"),
        (b"x-a", b"1\x00"),
        (b"x-a\r\nhost", b"evil"),
        (b"x a", b"1"),
        (b"x-a:", b"1"),
    ],
)
async def test_a_header_that_could_start_another_field_is_never_sent(
    script: Callable[[Handler], ScriptedUpstream], header: tuple[bytes, bytes]
) -> None:
    server = script(lambda *_: OK)
    client = client_for(server)

    with pytest.raises(UnsendableRequest):
        async with client.request(b"GET", b"/x", [*HOST, header]):
            pass

    assert server.connections == 0
    await client.close()


async def test_a_second_answer_to_one_request_is_never_taken_for_the_next_ones(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsmuggle"
    server = script(lambda _c, request, _h, _b: OK + smuggled if request == 1 else OK)
    client = client_for(server)

    assert await get(client) == (200, b"ok")
    assert await get(client) == (200, b"ok")

    assert server.connections == 2  # the connection that talked too much was not reused
    await client.close()


async def until(condition: Callable[[], bool], what: str, deadline: float = 5.0) -> None:
    """Yield to the loop until ``condition`` holds (the client's own callbacks make it so)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not condition():
        assert loop.time() - started < deadline, f"{what} did not happen within {deadline} s"
        await asyncio.sleep(0.01)


async def test_a_big_answer_left_unread_is_never_pooled_and_the_next_request_is_served(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    big = b"x" * 300_000
    server = script(
        lambda connection, _r, _h, _b: (
            b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big
            if connection == 1
            else OK
        )
    )
    client = client_for(server, pool_size=1, read_timeout=1.0)

    async with client.request(b"GET", b"/x", HOST) as answer:
        # Everything arrives while nobody reads: reading paused above the buffer's high water.
        await until(lambda: answer._connection.complete, "the whole answer arriving")

    assert client.idle_connections == 0
    assert await get(client, b"POST") == (200, b"ok")
    await client.close()


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: upstream\r\n\r\n"


def length_of(size: int) -> list[tuple[bytes, bytes]]:
    return [*HOST, (b"content-length", str(size).encode())]


async def test_a_body_longer_than_its_content_length_stops_at_the_length_and_closes_the_connection(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(lambda *_: OK)
    client = client_for(server)

    with pytest.raises(UnsendableRequest, match="longer"):
        async with client.request(b"POST", b"/x", length_of(4), body_of(b"{}", b"{}", SMUGGLED)):
            pass

    assert client.open_connections == 0
    # The excess (what the upstream would read as a next request) was never written.
    await until(lambda: server.bodies == [b"{}{}"], "the declared body reaching the upstream")
    await until(lambda: server.finished == 1, "the upstream seeing the connection end")
    assert len(server.heads) == 1
    await client.close()


async def test_a_body_shorter_than_its_content_length_is_an_error_and_closes_the_connection(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(lambda *_: OK)
    client = client_for(server)

    with pytest.raises(UnsendableRequest, match="shorter"):
        async with client.request(b"POST", b"/x", length_of(10), body_of(b"{}")):
            pass

    assert client.open_connections == 0
    assert server.bodies == []  # the upstream never got a whole request
    await client.close()


async def test_a_body_without_content_length_or_chunked_framing_is_never_sent(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(lambda *_: OK)
    client = client_for(server)

    with pytest.raises(UnsendableRequest):
        async with client.request(b"POST", b"/x", HOST, body_of(b"{}")):
            pass

    assert server.connections == 0
    await client.close()


def head_with(*fields: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\n" + b"".join(f + b"\r\n" for f in fields)


@pytest.mark.parametrize(
    "answer",
    [
        head_with(*(b"X-%d: 1" % n for n in range(201)), b"Content-Length: 2") + b"\r\nok",
        head_with(b"X-Big: " + b"a" * 70_000, b"Content-Length: 2") + b"\r\nok",
        # A head that never ends, and interim heads that never stop: refused while they come.
        head_with(*(b"X-%d: %s" % (n, b"a" * 1000) for n in range(100))),
        b"HTTP/1.1 100 Continue\r\n\r\n" * 5000,
    ],
    ids=["201 fields", "a 70 KB field", "an endless head", "endless interim answers"],
)
async def test_an_answer_head_over_64_kib_or_200_fields_is_a_protocol_error(
    script: Callable[[Handler], ScriptedUpstream], answer: bytes
) -> None:
    server = script(lambda *_: answer)
    client = client_for(server)

    with pytest.raises(UpstreamProtocolError, match="head is too large"):
        await get(client)

    assert client.open_connections == 0
    await client.close()


async def test_an_answer_head_of_200_fields_within_64_kib_is_read(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    fields = [b"X-%03d: %s" % (n, b"a" * 300) for n in range(199)]
    server = script(lambda *_: head_with(*fields, b"Content-Length: 2") + b"\r\nok")
    client = client_for(server)

    async with client.request(b"GET", b"/x", HOST) as answer:
        assert (answer.status, len(answer.headers), await answer.read()) == (200, 200, b"ok")
    await client.close()


async def test_an_empty_piece_of_a_chunked_body_never_ends_it_early(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(lambda *_: OK)
    client = client_for(server)

    async with client.request(b"POST", b"/x", HOST, body_of(b"a", b"", b"b"), chunked=True) as a:
        assert await a.read() == b"ok"
    assert await get(client) == (200, b"ok")

    assert server.bodies == [b"ab", b""]
    assert server.connections == 1
    await client.close()


async def test_a_waiter_is_served_before_a_newcomer_that_asks_as_the_connection_is_freed(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(lambda *_: OK)
    client = client_for(server, pool_size=1)
    served: list[str] = []

    async def take(name: str) -> None:
        assert await get(client) == (200, b"ok")
        served.append(name)

    async with client.request(b"GET", b"/x", HOST) as answer:
        await answer.read()
        waiter = asyncio.create_task(take("waiter"))
        await asyncio.sleep(0)  # the waiter queues for the one connection
    # Freed, and at once asked for again by whoever freed it: still the waiter's turn.
    await take("newcomer")
    await waiter

    assert served == ["waiter", "newcomer"]
    assert server.connections == 1
    await client.close()


async def test_a_waiter_handed_the_connection_then_cancelled_passes_it_to_the_next(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(lambda *_: OK)
    client = client_for(server, pool_size=1, connect_timeout=2.0)

    async with client.request(b"GET", b"/x", HOST) as answer:
        await answer.read()
        first = asyncio.create_task(get(client))
        second = asyncio.create_task(get(client))
        await asyncio.sleep(0)  # both queue
    first.cancel()  # handed the connection on release, cancelled before it could use it

    assert await second == (200, b"ok")
    with pytest.raises(asyncio.CancelledError):
        await first
    assert (client.open_connections, client.idle_connections, server.connections) == (1, 1, 1)
    await client.close()


async def test_a_request_cancelled_while_waiting_for_the_head_closes_its_connection(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(lambda connection, _r, _h, _b: HANG if connection == 1 else OK)
    client = client_for(server, pool_size=1)

    waiting = asyncio.create_task(get(client))
    await until(lambda: len(server.heads) == 1, "the request reaching the upstream")
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    assert (client.open_connections, client.idle_connections) == (0, 0)
    assert await get(client) == (200, b"ok")  # on a new connection: the pool slot came back
    assert server.connections == 2
    await client.close()


async def test_a_request_cancelled_mid_body_closes_its_connection(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(
        lambda connection, _r, _h, _b: (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfive!" if connection == 1 else OK
        )
    )
    client = client_for(server, pool_size=1)
    got_some = asyncio.Event()

    async def read_slowly() -> None:
        async with client.request(b"GET", b"/x", HOST) as answer:
            async for _ in answer.chunks():
                got_some.set()

    reading = asyncio.create_task(read_slowly())
    await got_some.wait()
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading

    assert (client.open_connections, client.idle_connections) == (0, 0)
    assert await get(client) == (200, b"ok")
    await client.close()


async def test_a_closed_client_refuses_requests_and_its_waiters(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(lambda *_: OK)
    client = client_for(server, pool_size=1)

    async with client.request(b"GET", b"/x", HOST) as answer:
        waiter = asyncio.create_task(get(client))
        await asyncio.sleep(0)
        await client.close()
        with pytest.raises(UpstreamClosed):
            await waiter
        await answer.read()

    with pytest.raises(UpstreamClosed):
        await get(client)
    assert client.idle_connections == 0  # the answer in flight was not pooled after close
    assert len(server.heads) == 1


SECOND_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsmuggle"


async def test_a_second_answer_in_a_later_read_before_the_release_closes_the_connection(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(lambda c, r, _h, _b: (OK, SECOND_ANSWER) if (c, r) == (1, 1) else OK)
    client = client_for(server)

    async with client.request(b"GET", b"/x", HOST) as answer:
        assert await answer.read() == b"ok"
        server.next_piece.set()  # arrives while the answer is still held
        await until(lambda: server.finished == 1, "the client closing the connection")

    assert client.idle_connections == 0
    assert await get(client) == (200, b"ok")
    assert server.connections == 2
    await client.close()


async def test_a_second_answer_in_a_later_read_while_idle_closes_the_connection(
    script: Callable[[Handler], ScriptedUpstream],
) -> None:
    server = script(lambda c, r, _h, _b: (OK, SECOND_ANSWER) if (c, r) == (1, 1) else OK)
    client = client_for(server)
    assert await get(client) == (200, b"ok")
    assert client.idle_connections == 1

    server.next_piece.set()  # arrives at the pooled connection
    await until(lambda: server.finished == 1, "the client closing the connection")

    assert await get(client) == (200, b"ok")
    assert server.connections == 2  # the connection that talked out of turn was not reused
    assert len(server.heads) == 2
    await client.close()
