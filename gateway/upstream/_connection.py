"""One keep-alive HTTP/1.1 connection to PostgREST: an asyncio Protocol fed to llhttp.

The connection serves one exchange at a time (no pipelining). Everything an exchange needs to
wait for (the head, the next body bytes, room to write) is one future at a time, armed with
the read timeout: silence for that long is a :class:`TimeoutError`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import cast

import httptools

from gateway.upstream._errors import UpstreamClosed, UpstreamProtocolError

Header = tuple[bytes, bytes]

# Body bytes buffered before the socket is no longer read: a slow client holds this much of a
# big answer per connection, and PostgREST waits in TCP's own flow control for the rest.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024
# The most of an answer's head (interim 1xx heads included) and the most header fields read
# before the answer is refused: PostgREST's heads are a few hundred bytes, and a head that never
# ends would otherwise grow in memory for as long as the bytes keep coming.
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 200


class Connection(asyncio.Protocol):
    """The protocol side; :class:`gateway.upstream.client.UpstreamClient` drives it."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_error",
        "_field_bytes",
        "_fields",
        "_head_bytes",
        "_head_only",
        "_interim",
        "_loop",
        "_paused_reading",
        "_timeout",
        "_waiter",
        "_writable",
        "complete",
        "exchanges",
        "framed",
        "headers",
        "idle_since",
        "in_exchange",
        "parser",
        "received",
        "reusable",
        "status",
        "transport",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._writable = True
        self._paused_reading = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._error: BaseException | None = None
        self._head_bytes = 0
        self._field_bytes = 0
        self._fields = 0
        self._head_only = False
        self._interim = False
        self.in_exchange = False
        self.exchanges = 0
        self.idle_since = 0.0
        self.status = 0
        self.headers: list[Header] = []
        self.complete = False
        self.received = False  # any byte of this exchange's answer
        self.framed = False  # the answer says where its body ends (length or chunked)
        self.reusable = True

    # --- driven by the client ---------------------------------------------------------------

    def begin(self, *, head_only: bool) -> None:
        """Start an exchange: a fresh parser (the last one may have stopped at a HEAD's head)."""
        if self.exchanges:
            self.parser = httptools.HttpResponseParser(self)
        self.exchanges += 1
        self.in_exchange = True
        self._head_only = head_only
        self.status = 0
        self.headers = []
        self.complete = False
        self.received = False
        self.framed = False
        self._chunks.clear()
        self._buffered = 0
        self._head_bytes = 0
        self._field_bytes = 0
        self._fields = 0

    @property
    def alive(self) -> bool:
        return self.reusable and self._error is None and self.transport is not None

    @property
    def reading_paused(self) -> bool:
        """The socket is not read (too much of the body is buffered): never fit for the pool,
        where nothing would resume it and the next answer would never be read."""
        return self._paused_reading

    def write(self, data: bytes) -> None:
        if self._error is not None:
            raise self._error
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the socket's send buffer is full (PostgREST is not reading)."""
        while not self._writable:
            await self._wait()

    async def head(self) -> None:
        """Wait for the final (non-1xx) status line and headers."""
        while not self.status:
            await self._wait()

    async def next_chunk(self) -> bytes | None:
        """The next body bytes, or None once the body is complete."""
        while not self._chunks:
            if self.complete:
                return None
            await self._wait()
        chunk = self._chunks.popleft()
        self._buffered -= len(chunk)
        if self._paused_reading and self._buffered <= LOW_WATER and self.transport is not None:
            self._paused_reading = False
            self.transport.resume_reading()
        return chunk

    def take_body(self) -> bytes | None:
        """The whole body at once when all of it has arrived already (None otherwise, and
        nothing is taken)."""
        if not self.complete:
            return None
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)  # b"" for none
        chunks.clear()
        self._buffered = 0
        if self._paused_reading and self.transport is not None:
            # As next_chunk does once the buffer drains: a paused connection is never pooled.
            self._paused_reading = False
            self.transport.resume_reading()
        return body

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(self._timeout, self._time_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _time_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_exception(TimeoutError())

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error
        self.reusable = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.in_exchange:
            # Bytes that answer no request (after a HEAD, or an idle connection talking):
            # whatever they are, the next exchange must not read them as its answer.
            self._fail(UpstreamProtocolError("bytes outside an exchange"))
            self.close()
            return
        self.received = True
        if not self.status:
            # An overestimate when body bytes share the read; only a head still unfinished
            # after this read is held to it (on_header bounds a finished one).
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
            if not self.status and self._head_bytes > MAX_HEAD_BYTES:
                raise UpstreamProtocolError("the answer's head is too large")
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("PostgREST answered with a protocol upgrade"))
            self.close()
        except UpstreamProtocolError as exc:
            self._fail(exc)
            self.close()
        except httptools.HttpParserError as exc:
            if not (self.complete and self._head_only):
                # A refusal raised in a callback comes back wrapped: keep its own words.
                cause = exc.__context__
                self._fail(
                    cause
                    if isinstance(cause, UpstreamProtocolError)
                    else UpstreamProtocolError(f"unreadable answer: {type(exc).__name__}")
                )
            # Whatever came, this connection's bytes can no longer be trusted to frame answers.
            self.close()

    def eof_received(self) -> bool:
        if self.in_exchange and self.status and not self.framed and not self.complete:
            # A body without a length ends with the connection (RFC 9112 section 6.3 item 8).
            self.complete = True
            self._wake()
        self._fail(UpstreamClosed("PostgREST closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(UpstreamClosed("the connection to PostgREST was lost"))

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        self._wake()

    # --- llhttp callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            # A second answer to one request: never read as the next request's answer.
            raise UpstreamProtocolError("PostgREST sent more than one answer")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        self._field_bytes += len(name) + len(value)
        if self._fields > MAX_HEADER_FIELDS or self._field_bytes > MAX_HEAD_BYTES:
            raise UpstreamProtocolError("the answer's head is too large")
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            if status == 101 or self.parser.should_upgrade():
                raise UpstreamProtocolError("PostgREST answered with a protocol upgrade")
            # 100 Continue, 103 Early Hints: interim answers, skipped (RFC 9110 section 15.2).
            self._interim = True
            self.headers = []
            return
        self.status = status
        self.framed = any(
            n.lower() in (b"content-length", b"transfer-encoding") for n, _ in self.headers
        )
        if self._head_only:
            # A HEAD answer has no body, whatever its Content-Length says (RFC 9110 9.3.2).
            # llhttp cannot be told so; the exchange ends here and the connection with it.
            self.complete = True
            self.reusable = False
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return  # bytes after a HEAD answer's head: no body, whatever was sent
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered >= HIGH_WATER and not self._paused_reading and self.transport:
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self.complete:
            return
        self.complete = True
        if not self.parser.should_keep_alive():
            self.reusable = False
        self._wake()
