"""A Presign'd answer is signed off the event loop: other requests are not held up meanwhile."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gateway.asgi import Message
from gateway.proxy._presign import send_enriched
from gateway.storage import Enrichment, StorageConfig, enrich, enrichment_for
from gateway.upstream import UpstreamAddress, UpstreamClient
from tests.unit.test_storage_decisions import PHOTOS

ROWS = 10_000
BODY = json.dumps([{"id": i, "k": f"orgs/1/documents/{i}.pdf"} for i in range(ROWS)]).encode()


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    async def rows(_: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/json")

    app = web.Application()
    app.router.add_get("/rows", rows)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def client_for(upstream: str) -> UpstreamClient:
    """The gateway's own upstream client, as the mount uses it."""
    return UpstreamClient(
        UpstreamAddress.parse(upstream), pool_size=2, connect_timeout=5, read_timeout=5
    )


ROWS_REQUEST = (b"GET", b"/rows", [(b"host", b"127.0.0.1")])


def enrichment() -> Enrichment:
    storage = StorageConfig(buckets={"photos": PHOTOS}, max_batch=1, max_rows=ROWS)
    claims = {"user": {"user_id": 10, "organization_id": 1, "role": "org_client"}}
    return enrichment_for(b"k; bucket=photos", storage, claims=claims)


async def test_the_event_loop_keeps_running_while_an_answer_is_signed(upstream: str) -> None:
    started = time.perf_counter()
    enrich(BODY, enrichment())
    on_the_loop = time.perf_counter() - started
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    longest_pause = 0.0
    done = False

    async def ticker() -> None:
        nonlocal longest_pause
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest_pause = max(longest_pause, now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    http = client_for(upstream)
    async with http.request(*ROWS_REQUEST) as answer:
        await send_enriched(send, answer, [], enrichment(), asyncio.Semaphore(1))
    await http.close()
    done = True
    await ticking

    assert sent[0]["status"] == 200
    assert len(json.loads(sent[1]["body"])) == ROWS
    # Signed in the loop, the ticker would have stopped for the whole enrichment.
    assert longest_pause < on_the_loop / 2, (longest_pause, on_the_loop)


async def test_with_every_slot_taken_an_enrichment_waits_then_gets_503(
    upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.proxy._presign.SLOT_WAIT", 0.05)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    slots = asyncio.Semaphore(1)
    http = client_for(upstream)
    try:
        await slots.acquire()
        async with http.request(*ROWS_REQUEST) as answer:
            await send_enriched(send, answer, [], enrichment(), slots)
        assert sent[0]["status"] == 503
        assert json.loads(sent[1]["body"])["code"] == "presign_busy"
        slots.release()
        sent.clear()
        async with http.request(*ROWS_REQUEST) as answer:
            await send_enriched(send, answer, [], enrichment(), slots)
    finally:
        await http.close()

    assert sent[0]["status"] == 200
    # The slot is given back once the thread is done.
    assert not slots.locked()
