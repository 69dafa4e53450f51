"""The request body on its way to PostgREST: streamed, bounded in size and in idle time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from gateway.asgi import Receive


class ClientDisconnected(Exception):
    pass


class BodyTooLarge(Exception):
    pass


class BodyStalled(Exception):
    pass


class RequestBody:
    """The request body as it arrives, streamed upstream and refused past ``limit`` bytes.

    What went wrong is kept here as well as raised: the mount must tell 413, 408 and a
    vanished client apart whatever exception the failure surfaced as upstream.
    """

    __slots__ = ("_idle", "_limit", "_receive", "disconnected", "finished", "stalled", "too_large")

    def __init__(self, receive: Receive, limit: int, idle: float) -> None:
        self._receive = receive
        self._limit = limit
        self._idle = idle
        self.too_large = False
        self.disconnected = False
        self.stalled = False
        self.finished = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        while True:
            try:
                # A client that stops sending mid-body (slowloris) would otherwise hold this
                # connection and a pooled upstream connection for as long as it likes.
                async with asyncio.timeout(self._idle):
                    message = await self._receive()
            except TimeoutError:
                self.stalled = True
                raise BodyStalled from None
            if message["type"] == "http.disconnect":
                self.disconnected = True
                raise ClientDisconnected
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self._limit:
                self.too_large = True
                raise BodyTooLarge
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                self.finished = True
                return


def drop_tracebacks(exc: BaseException) -> None:
    """Cut the tracebacks of ``exc`` and the exceptions chained to it.

    An HTTP client may keep the exception it raised where its own traceback reaches it (the
    upstream client keeps a connection's failure to raise it again), a cycle that only the
    cyclic garbage collector frees. Until then the cycle holds this request's
    frames, hence the server's ``receive``, and Granian keeps a connection open while its
    request body can still be read: a stalled client's connection stayed open after the 408
    that said ``Connection: close``. Only the links are cut; the frames are left alone
    (``traceback.clear_frames`` would also finalize a coroutine still suspended in one).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__
