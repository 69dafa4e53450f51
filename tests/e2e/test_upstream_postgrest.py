"""The upstream client against the real PostgREST: keep-alive, chunked and large answers both
ways, HEAD, 204, flow control, a restart under a pooled connection, and a Unix socket."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.upstream import UpstreamAddress, UpstreamClient
from gateway.upstream._connection import HIGH_WATER
from tests.e2e.conftest import TodosDatabase, execute
from tests.support.postgres import free_port
from tests.support.postgrest import PostgREST, run_postgrest

SECRET = "a-test-secret-of-at-least-thirty-two-characters"
BIG = 300_000  # bytes: well over 64 KiB, several socket reads
FRAMING = frozenset({b"content-length", b"transfer-encoding"})


@pytest.fixture(scope="module")
def functions(todos_database: TodosDatabase) -> TodosDatabase:
    anon = todos_database.anon_role
    execute(
        todos_database.admin_url,
        f"""
        CREATE OR REPLACE FUNCTION public.upstream_big(n int) RETURNS text
          LANGUAGE sql STABLE AS $$ SELECT repeat('x', n) $$;
        CREATE OR REPLACE FUNCTION public.upstream_rows(n int) RETURNS SETOF json
          LANGUAGE sql STABLE AS $$ SELECT json_build_object('i', i, 'pad', repeat('p', 100))
                                   FROM generate_series(1, n) AS i $$;
        CREATE OR REPLACE FUNCTION public.upstream_length(t text) RETURNS int
          LANGUAGE sql STABLE AS $$ SELECT length(t) $$;
        CREATE TABLE IF NOT EXISTS public.upstream_items (id int PRIMARY KEY);
        GRANT SELECT, INSERT, DELETE ON public.upstream_items TO "{anon}";
        GRANT EXECUTE ON FUNCTION public.upstream_big(int), public.upstream_rows(int),
          public.upstream_length(text) TO "{anon}";
        NOTIFY pgrst, 'reload schema';
        """,
    )
    return todos_database


@contextmanager
def postgrest(database: TodosDatabase, postgrest_bin: Path, **config: str) -> Iterator[PostgREST]:
    port = config.pop("port", None)
    with run_postgrest(
        db_uri=database.authenticator_url,
        jwt_secret=SECRET,
        anon_role=database.anon_role,
        binary=postgrest_bin,
        extra_config=config or None,
        server_port=int(port) if port else None,
    ) as server:
        yield server


def client_for(url: str, **options: float) -> UpstreamClient:
    return UpstreamClient(
        UpstreamAddress.parse(url),
        pool_size=int(options.get("pool_size", 4)),
        connect_timeout=5.0,
        read_timeout=options.get("read_timeout", 10.0),
    )


def headers(client: UpstreamClient, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [(b"host", client.address.host_header), *extra]


async def get(client: UpstreamClient, target: bytes) -> tuple[int, bytes]:
    async with client.request(b"GET", target, headers(client)) as answer:
        return answer.status, await answer.read()


async def pieces(data: bytes, size: int = 50_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def server(functions: TodosDatabase, postgrest_bin: Path) -> Iterator[PostgREST]:
    with postgrest(functions, postgrest_bin) as running:
        yield running


async def test_one_connection_serves_many_requests(server: PostgREST) -> None:
    client = client_for(server.url)

    statuses = [(await get(client, b"/rpc/upstream_big?n=10"))[0] for _ in range(25)]

    assert statuses == [200] * 25
    assert (client.open_connections, client.idle_connections) == (1, 1)
    await client.close()


async def test_a_large_answer_arrives_whole_and_the_connection_is_reused(
    server: PostgREST,
) -> None:
    client = client_for(server.url)

    async with client.request(b"GET", b"/rpc/upstream_rows?n=5000", headers(client)) as answer:
        framing = {name.lower() for name, _ in answer.headers} & FRAMING
        rows = json.loads(await answer.read())

    assert answer.status == 200
    assert len(rows) == 5000
    assert rows[-1]["i"] == 5000
    assert framing  # PostgREST frames the body; the client read it by that framing
    assert (await get(client, b"/rpc/upstream_big?n=3"))[0] == 200
    assert client.open_connections == 1
    await client.close()


async def test_a_chunked_answer_is_read_to_its_last_chunk(server: PostgREST) -> None:
    """PostgREST 12 sends every answer chunked; this one spans many chunks and reads."""
    client = client_for(server.url)

    async with client.request(b"GET", b"/rpc/upstream_big?n=%d" % BIG, headers(client)) as answer:
        framing = [(n.lower(), v.lower()) for n, v in answer.headers if n.lower() in FRAMING]
        body = await answer.read()

    assert framing == [(b"transfer-encoding", b"chunked")]
    assert body == b'"' + b"x" * BIG + b'"'
    await client.close()


async def test_a_request_body_over_64_kib_streams_up_with_a_length_or_chunked(
    server: PostgREST,
) -> None:
    client = client_for(server.url)
    document = json.dumps({"t": "y" * BIG}).encode()
    json_type = (b"content-type", b"application/json")

    with_length = headers(client, json_type, (b"content-length", str(len(document)).encode()))
    async with client.request(
        b"POST", b"/rpc/upstream_length", with_length, pieces(document)
    ) as answer:
        assert (answer.status, await answer.read()) == (200, str(BIG).encode())
    async with client.request(
        b"POST",
        b"/rpc/upstream_length",
        headers(client, json_type),
        pieces(document),
        chunked=True,
    ) as answer:
        assert (answer.status, await answer.read()) == (200, str(BIG).encode())
    assert client.open_connections == 1
    await client.close()


async def test_a_big_answer_read_slowly_stops_the_socket_being_read(server: PostgREST) -> None:
    client = client_for(server.url)

    async with client.request(b"GET", b"/rpc/upstream_big?n=8000000", headers(client)) as answer:
        connection = answer._connection
        transport = connection.transport
        assert transport is not None
        for _ in range(1_000_000):
            if not transport.is_reading():
                break
            # Not a timed sleep: one turn of the event loop, which reads what has arrived.
            await asyncio.sleep(0)
        assert not transport.is_reading(), "reading never paused"
        buffered = connection._buffered
        body = await answer.read()

    assert HIGH_WATER <= buffered < HIGH_WATER + 1024 * 1024
    assert len(body) == 8_000_000 + 2  # a JSON string: the quotes
    await client.close()


async def test_head_has_no_body_and_the_next_request_is_served(server: PostgREST) -> None:
    client = client_for(server.url)

    async with client.request(b"HEAD", b"/rpc/upstream_big?n=100000", headers(client)) as answer:
        assert (answer.status, await answer.read()) == (200, b"")
    assert await get(client, b"/rpc/upstream_big?n=2") == (200, b'"xx"')
    await client.close()


async def test_a_204_answer_has_no_body_and_keeps_the_connection(server: PostgREST) -> None:
    client = client_for(server.url)

    async with client.request(b"DELETE", b"/upstream_items?id=eq.-1", headers(client)) as answer:
        assert (answer.status, await answer.read()) == (204, b"")
    assert (await get(client, b"/upstream_items?id=eq.-1"))[0] == 200
    assert client.open_connections == 1
    await client.close()


async def test_a_restart_of_postgrest_under_a_pooled_connection_costs_no_request(
    functions: TodosDatabase, postgrest_bin: Path
) -> None:
    port = free_port()
    with postgrest(functions, postgrest_bin, port=str(port)) as first:
        client = client_for(first.url)
        assert (await get(client, b"/rpc/upstream_big?n=1"))[0] == 200
    # The pooled connection saw PostgREST go away; a new PostgREST listens on the same port.
    with postgrest(functions, postgrest_bin, port=str(port)):
        assert (await get(client, b"/rpc/upstream_big?n=1"))[0] == 200
        async with client.request(
            b"POST",
            b"/upstream_items",
            headers(client, (b"content-type", b"application/json"), (b"content-length", b"9")),
            pieces(b'{"id": 1}'),
        ) as answer:
            assert answer.status == 201
        await asyncio.to_thread(execute, functions.admin_url, "DELETE FROM upstream_items")
    await client.close()


async def test_postgrest_on_a_unix_socket_is_reached_by_a_unix_url(
    functions: TodosDatabase, postgrest_bin: Path
) -> None:
    with tempfile.TemporaryDirectory(prefix="pgrst-") as folder:
        socket_path = f"{folder}/postgrest.sock"
        with postgrest(functions, postgrest_bin, **{"server-unix-socket": socket_path}):
            client = client_for(f"unix://{socket_path}")
            assert client.address.host_header == b"localhost"

            answers = [await get(client, b"/rpc/upstream_big?n=4") for _ in range(5)]

            assert answers == [(200, b'"xxxx"')] * 5
            assert client.open_connections == 1
            await client.close()
