"""A ``/rest`` GET with ``Presign``: PostgREST's answer read whole and each row given its URL."""

from __future__ import annotations

import asyncio
import functools
import re
import time

from gateway.asgi import Header, Send
from gateway.errors import GatewayError
from gateway.proxy.error_answers import reply_error
from gateway.proxy.response_headers import merge_vary
from gateway.storage import Enrichment, enrich
from gateway.upstream import UpstreamAnswer

# The largest answer buffered to add URLs to; a bigger one is refused (ask for fewer rows).
MAX_PRESIGN_ANSWER = 16 * 1024 * 1024
# Enrichments one process runs at once (buffering included): each holds up to 16 MiB in and
# 32 MiB out, and signs on a CPU; the others wait, at most SLOT_WAIT seconds, then get a 503.
ENRICHMENT_SLOTS = 2
SLOT_WAIT = 10.0
_JSON_TYPES = (b"application/json", b"application/vnd.pgrst.array+json")
# PostgREST's "0-24/*" or "0-24/1000": the rows of this answer, known before its body.
_CONTENT_RANGE = re.compile(rb"\s*([0-9]{1,18})-([0-9]{1,18})/(?:[0-9]+|\*)\s*")
_ENRICHED_HEADERS = (b"content-length", b"cache-control", b"vary")


def enrichable(answer: UpstreamAnswer) -> bool:
    """A 2xx uncompressed JSON array answer: the only kind the Presign header changes (a 204
    has no body to change)."""
    media = (answer.header(b"content-type") or b"").split(b";", 1)[0].strip().lower()
    encoding = (answer.header(b"content-encoding") or b"identity").strip().lower()
    return (
        200 <= answer.status < 300
        and answer.status != 204
        and media in _JSON_TYPES
        and encoding == b"identity"
    )


async def send_enriched(
    send: Send,
    answer: UpstreamAnswer,
    downstream: list[Header],
    enrichment: Enrichment,
    slots: asyncio.Semaphore,
) -> None:
    """Send an :func:`enrichable` ``answer`` (headers already rewritten into ``downstream``)
    with URLs added, or the error refusing it; the signing runs in a worker thread."""
    declared = _declared_rows(answer.header(b"content-range"))
    if declared is not None and declared > enrichment.max_rows:
        # Refused before a byte of the body is read.
        await reply_error(send, 400, "too_many_rows", _too_many(enrichment.max_rows))
        return
    if (answer.content_length or 0) > MAX_PRESIGN_ANSWER:
        await _reply_too_large(send)
        return
    try:
        async with asyncio.timeout(SLOT_WAIT):
            await slots.acquire()
    except TimeoutError:
        await reply_error(send, 503, "presign_busy", "Too many Presign requests; retry shortly.")
        return
    handed_over = False
    try:
        body = await _read_capped(answer)
        if body is None:
            await _reply_too_large(send)
            return
        work = asyncio.get_running_loop().run_in_executor(
            None, functools.partial(enrich, body, enrichment, now=int(time.time()))
        )
        # The slot is the thread's until it ends, even if this request is cancelled meanwhile:
        # the bound is on the work running, not on the requests waiting for it.
        work.add_done_callback(lambda _: slots.release())
        handed_over = True
        out = await asyncio.shield(work)
    except GatewayError as exc:
        await reply_error(send, exc.status, exc.code, exc.message)
        return
    finally:
        if not handed_over:
            slots.release()
    headers = [(n, v) for n, v in downstream if n not in _ENRICHED_HEADERS]
    vary = [v for n, v in downstream if n == b"vary"]
    headers += [
        (b"content-length", str(len(out)).encode()),
        # A bearer credential per row: no cache keeps it, and the answer differs by Presign.
        (b"cache-control", b"no-store"),
        (b"vary", merge_vary(vary, (b"Presign",))),
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": out})


async def _read_capped(answer: UpstreamAnswer) -> bytearray | None:
    body = bytearray()
    async for chunk in answer.chunks():
        body += chunk
        if len(body) > MAX_PRESIGN_ANSWER:
            return None
    return body


def _declared_rows(content_range: bytes | None) -> int | None:
    match = _CONTENT_RANGE.fullmatch(content_range) if content_range else None
    if match is None:
        return None
    first, last = int(match[1]), int(match[2])
    return last - first + 1 if last >= first else None


def _too_many(limit: int) -> str:
    return (
        f"Presign adds URLs to at most {limit} rows; ask for fewer "
        "(limit=, offset= or a Range header)."
    )


async def _reply_too_large(send: Send) -> None:
    await reply_error(
        send,
        400,
        "answer_too_large",
        f"Presign reads answers of at most {MAX_PRESIGN_ANSWER} bytes; ask for fewer rows "
        "(limit=, offset= or a Range header) or fewer columns.",
    )
