"""A ``/rest`` GET with ``Presign``: PostgREST's answer read whole and each row given its URL."""

from __future__ import annotations

import time

import aiohttp

from gateway.asgi import Header, Send
from gateway.proxy.error_answers import reply_error
from gateway.storage import Enrichment, enrich

# The largest answer buffered to add URLs to; a bigger one is refused (ask for fewer rows).
MAX_ENRICHED_ANSWER = 64 * 1024 * 1024
_JSON_TYPES = (b"application/json", b"application/vnd.pgrst.array+json")


async def send_enriched(
    send: Send,
    answer: aiohttp.ClientResponse,
    downstream: list[Header],
    enrichment: Enrichment,
) -> None:
    """Send ``answer`` (already open, headers already rewritten into ``downstream``) with URLs
    added; anything that is not a 2xx uncompressed JSON array passes untouched."""
    body = bytearray()
    async for chunk in answer.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > MAX_ENRICHED_ANSWER:
            await reply_error(
                send,
                502,
                "answer_too_large",
                "This answer is too large to presign; ask for fewer rows (limit=, Range).",
            )
            return
    enriched = (
        enrich(bytes(body), enrichment, now=int(time.time())) if _enrichable(answer) else None
    )
    out = bytes(body) if enriched is None else enriched
    headers = [(n, v) for n, v in downstream if n != b"content-length"]
    headers.append((b"content-length", str(len(out)).encode()))
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": out})


def _enrichable(answer: aiohttp.ClientResponse) -> bool:
    media = answer.headers.get("Content-Type", "").split(";", 1)[0].strip().lower().encode()
    encoding = answer.headers.get("Content-Encoding", "identity").strip().lower()
    return 200 <= answer.status < 300 and media in _JSON_TYPES and encoding == "identity"
