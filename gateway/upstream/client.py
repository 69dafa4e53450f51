"""The per-worker client to PostgREST: a bounded pool of keep-alive HTTP/1.1 connections.

It does what the mount needs and nothing else: no decompression, no redirects, no cookies, no
headers of its own; the answer's header block comes back as sent (order, case, duplicates).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections import deque
from collections.abc import AsyncIterator, Sequence
from types import TracebackType

from gateway.upstream._connection import Connection, Header
from gateway.upstream._errors import (
    UnsendableRequest,
    UpstreamClosed,
    UpstreamError,
    UpstreamUnreachable,
)
from gateway.upstream.address import UpstreamAddress, check_target

# Sent again after a stale pooled connection, and only without a body: the safe methods of
# RFC 9110 section 9.2.1. DELETE and PUT are idempotent too, but a replayed DELETE may answer
# differently (return=representation), and the documented rule is "never retried".
REPLAYABLE = frozenset({b"GET", b"HEAD", b"OPTIONS"})
# A pooled connection idle for longer is closed rather than reused: PostgREST's HTTP server
# (Warp) closes idle connections after 30 s by default; losing that race costs a retry.
MAX_IDLE = 20.0
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSAFE_VALUE = re.compile(rb"[\x00\r\n]")
_CHUNK_END = b"\r\n"


class UpstreamClient:
    """Connections to one :class:`UpstreamAddress`, at most ``pool_size`` open at once.

    ``connect_timeout`` bounds making a connection, waiting for a free one included;
    ``read_timeout`` bounds each silence of PostgREST's (waiting for the head, for the next
    body bytes, for room to write the request body). Both raise :class:`TimeoutError`.
    """

    __slots__ = (
        "_closed",
        "_connect_timeout",
        "_idle",
        "_loop",
        "_open",
        "_read_timeout",
        "_ssl",
        "_waiters",
        "address",
        "pool_size",
    )

    def __init__(
        self,
        address: UpstreamAddress,
        *,
        pool_size: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        self.address = address
        self.pool_size = pool_size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._ssl = ssl.create_default_context() if address.scheme == "https" else None
        self._idle: deque[Connection] = deque()
        self._open = 0
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def idle_connections(self) -> int:
        return len(self._idle)

    @property
    def open_connections(self) -> int:
        return self._open

    def request(
        self,
        method: bytes,
        target: bytes,
        headers: Sequence[Header],
        body: AsyncIterator[bytes] | None = None,
        *,
        chunked: bool = False,
    ) -> Exchange:
        """``async with client.request(...) as answer``: send the request, wait for the head.

        ``headers`` go out as given (``Host`` included: the caller names it); with ``body``
        they must carry ``Content-Length``, or ``chunked`` frames the body instead.
        """
        return Exchange(self, method, target, headers, body, chunked)

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(UpstreamClosed("the client is closed"))

    # --- the pool ---------------------------------------------------------------------------

    async def _acquire(self) -> tuple[Connection, bool]:
        """A live pooled connection (reused: True) or a new one (False).

        Waiters are served first come, first served: a connection or a slot given up while
        someone waits is handed to the longest waiting, never left for a newcomer to take.
        """
        if self._closed:
            raise UpstreamClosed("the client is closed")
        loop = self._loop = asyncio.get_running_loop()
        now = loop.time()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the least likely stale
            if connection.alive and now - connection.idle_since < MAX_IDLE:
                return connection, True
            self._discard(connection)
        async with asyncio.timeout(self._connect_timeout):
            if self._open < self.pool_size and not self._waiters:
                self._open += 1
            else:
                waiter: asyncio.Future[Connection | None] = loop.create_future()
                self._waiters.append(waiter)
                try:
                    handed = await waiter
                except BaseException:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
                    elif waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                        self._pass_on(waiter.result())  # handed over, then timed out or cancelled
                    raise
                if handed is not None:
                    if handed.alive:
                        return handed, True
                    handed.close()  # it died on the way: its slot is this request's now
            try:
                return await self._connect(loop), False
            except BaseException:
                self._free_slot()
                raise

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> Connection:
        address = self.address

        def factory() -> Connection:
            return Connection(loop, self._read_timeout)

        try:
            if address.socket_path is not None:
                _, connection = await loop.create_unix_connection(factory, address.socket_path)
            else:
                _, connection = await loop.create_connection(
                    factory, address.host, address.port, ssl=self._ssl
                )
        except OSError as exc:
            raise UpstreamUnreachable(f"cannot connect: {type(exc).__name__}") from None
        return connection

    def _release(self, connection: Connection) -> None:
        """Back to the pool (or to the first waiter) if its whole answer arrived, it may be
        reused and its socket is read; closed otherwise."""
        connection.in_exchange = False
        if (
            connection.complete
            and connection.alive
            and not connection.reading_paused
            and not self._closed
        ):
            assert self._loop is not None
            connection.idle_since = self._loop.time()
            if not self._hand_over(connection):
                self._idle.append(connection)
        else:
            connection.close()
            self._free_slot()

    def _discard(self, connection: Connection) -> None:
        connection.close()
        self._free_slot()

    def _free_slot(self) -> None:
        """A connection closed: its slot goes to the first waiter, or back to the pool."""
        if not self._hand_over(None):
            self._open -= 1

    def _pass_on(self, handed: Connection | None) -> None:
        """What a waiter was handed and can no longer use: to the next waiter, or back."""
        if handed is None:
            self._free_slot()
        elif handed.alive and not self._closed:
            if not self._hand_over(handed):
                self._idle.append(handed)
        else:
            self._discard(handed)

    def _hand_over(self, handed: Connection | None) -> bool:
        """Give a connection (or, with None, the slot of a closed one) to the first waiter."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(handed)
                return True
        return False


class Exchange:
    """One request and its answer; ``async with`` sends it and hands over the answer."""

    __slots__ = ("_answer", "_body", "_chunked", "_client", "_headers", "_method", "_target")

    def __init__(
        self,
        client: UpstreamClient,
        method: bytes,
        target: bytes,
        headers: Sequence[Header],
        body: AsyncIterator[bytes] | None,
        chunked: bool,
    ) -> None:
        self._client = client
        self._method = method
        self._target = target
        self._headers = headers
        self._body = body
        self._chunked = chunked
        self._answer: UpstreamAnswer | None = None

    async def __aenter__(self) -> UpstreamAnswer:
        client = self._client
        head = _request_head(self._method, self._target, self._headers, self._chunked)
        # The length PostgREST reads the body by, from the very header sent: never more bytes
        # (they would be read as a next request), never fewer (it would wait for them).
        length = None if self._body is None or self._chunked else _declared_length(self._headers)
        replayable = self._body is None and self._method in REPLAYABLE
        head_only = self._method == b"HEAD"
        while True:
            connection, reused = await client._acquire()
            connection.begin(head_only=head_only)
            try:
                connection.write(head)
                if self._body is not None:
                    await _send_body(connection, self._body, length)
                await connection.head()
            except UpstreamError:
                stale = reused and not connection.received
                connection.close()
                client._release(connection)
                if stale and replayable:
                    # The connection died while idle and nothing of an answer came: the request
                    # cannot have been served, and the replay is safe. Once only: a new
                    # connection follows, and its failure is PostgREST's.
                    replayable = False
                    continue
                raise
            except BaseException:
                connection.close()
                client._release(connection)
                raise
            self._answer = UpstreamAnswer(client, connection)
            return self._answer

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._answer is not None:
            self._answer.release()


class UpstreamAnswer:
    """PostgREST's answer: status and raw header block at once, the body as it arrives."""

    __slots__ = ("_client", "_connection", "_released", "headers", "status")

    def __init__(self, client: UpstreamClient, connection: Connection) -> None:
        self._client = client
        self._connection = connection
        self._released = False
        self.status = connection.status
        # As PostgREST sent them: order, case and repeated fields kept.
        self.headers: list[Header] = connection.headers

    def header(self, name: bytes) -> bytes | None:
        """The first field named ``name`` (lower case), compared case-blind."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None

    @property
    def content_length(self) -> int | None:
        value = self.header(b"content-length")
        return int(value) if value is not None and value.isdigit() else None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in the pieces it arrived in (never more than the buffer holds)."""
        connection = self._connection
        while (chunk := await connection.next_chunk()) is not None:
            yield chunk

    def body_if_complete(self) -> bytes | None:
        """The whole body when it has all arrived with the head (most PostgREST answers do),
        else None and the body is read with :meth:`chunks`."""
        return self._connection.take_body()

    async def read(self) -> bytes:
        connection = self._connection
        parts = []
        while (chunk := await connection.next_chunk()) is not None:
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self) -> None:
        """Return the connection (reused only if the whole answer was read)."""
        if not self._released:
            self._released = True
            self._client._release(self._connection)


def _request_head(method: bytes, target: bytes, headers: Sequence[Header], chunked: bool) -> bytes:
    """The request line and header block, refused when a part could change the framing."""
    if not _TOKEN.fullmatch(method):
        raise UnsendableRequest("The method is not a token.")
    check_target(target)
    lines = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        lines += (name, b": ", value, b"\r\n")
    if chunked:
        lines.append(b"transfer-encoding: chunked\r\n")
    lines.append(b"\r\n")
    head = b"".join(lines)
    # One scan of every name and value at once: CR, LF or NUL anywhere but in the separators
    # (or a name that is not a token) would split a field or start a new one.
    values = b"".join(value for _, value in headers)
    if _UNSAFE_VALUE.search(values):
        raise UnsendableRequest("A header value holds CR, LF or NUL.")
    for name, _ in headers:
        if not _TOKEN.fullmatch(name):
            raise UnsendableRequest("A header name is not a token.")
    return head


def _declared_length(headers: Sequence[Header]) -> int:
    """The one ``Content-Length`` of a request sent with a body and no chunked framing."""
    values = [value for name, value in headers if name.lower() == b"content-length"]
    if len(values) != 1 or not values[0].isdigit():
        raise UnsendableRequest("A body needs one Content-Length, or chunked framing.")
    return int(values[0])


async def _send_body(
    connection: Connection, body: AsyncIterator[bytes], length: int | None
) -> None:
    """Write ``body``: exactly ``length`` bytes, or chunked when ``length`` is None.

    A body that runs past its length stops before the excess is written, and one that ends
    short fails: either way the caller closes the connection, so PostgREST never serves a
    request framed differently from the one the gateway checked.
    """
    sent = 0
    async for chunk in body:
        if connection.status:
            # PostgREST answered before reading the whole body: the rest is not wanted, and
            # the connection, with part of a request unsent, is never reused.
            connection.reusable = False
            return
        if not chunk:
            continue  # chunked, an empty piece would be the last-chunk marker: the body's end
        if length is None:
            connection.write(b"%x\r\n" % len(chunk) + chunk + _CHUNK_END)
        else:
            sent += len(chunk)
            if sent > length:
                raise UnsendableRequest("The body is longer than its Content-Length.")
            connection.write(chunk)
        await connection.drain()
    if length is None:
        connection.write(b"0\r\n\r\n")
    elif sent != length:
        raise UnsendableRequest("The body is shorter than its Content-Length.")
