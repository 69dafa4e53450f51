"""GATEWAY_METRICS_PORT: a plain HTTP listener that serves ``GET /metrics`` and nothing else.

It runs in ``gateway serve``'s own process (not a worker) on a thread, so it answers for every
worker through the multiprocess files, and stays up while workers restart. It is meant for the
scraper's network (GATEWAY_METRICS_HOST), so it asks for no token.

What one client can hold is bounded: each connection has ``timeout`` seconds in all, from its
accept to the end of its answer (a client trickling a byte at a time is cut at the deadline).
Connections wait for their request head on the serving thread, without a thread of their own
(at most ``MAX_WAITING``; one more closes the oldest), and at most ``max_connections`` are
answered at once, a thread each. Failures are
logged through :mod:`logging` (so GATEWAY_LOG_FORMAT applies) and answered as JSON. Bound to a
loopback address, it answers only requests whose ``Host`` names that address or ``localhost``
(DNS rebinding). A forked child (a Granian worker) closes its copies of the listener's sockets.
"""

from __future__ import annotations

import io
import ipaddress
import json
import logging
import os
import selectors
import socket
import sys
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from gateway.metrics.exposition import CONTENT_TYPE, DerivedFamilies, scrape

logger = logging.getLogger("gateway.metrics")

#: Seconds a connection may take in all, from its accept to the end of its answer.
TIMEOUT: Final = 5.0
#: Connections answered at once (a thread each); one more with its request head is closed.
MAX_CONNECTIONS: Final = 8
#: Connections waiting for their request head (no thread); one more closes the oldest.
MAX_WAITING: Final = 128

_NOT_FOUND = json.dumps({"code": "not_found", "message": "Not Found."}).encode()
_NOT_ALLOWED = json.dumps(
    {"code": "method_not_allowed", "message": "Only GET and HEAD are allowed."}
).encode()
_FAILED = json.dumps({"code": "internal_error", "message": "The scrape failed."}).encode()
_MISDIRECTED = json.dumps(
    {"code": "misdirected_request", "message": "This listener answers for localhost only."}
).encode()
_LOCAL_NAMES: Final = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (GATEWAY_METRICS_HOST) is a loopback address or ``localhost``."""
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_allowed(host_header: str | None, port: int) -> bool:
    """For a loopback listener: whether the ``Host`` header names a loopback address or
    ``localhost`` (with no port, or this ``port``). A page whose name was rebound to 127.0.0.1
    sends its own name, so it is refused. No header at all (HTTP/1.0) is no browser's."""
    if host_header is None:
        return True
    value = host_header.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        if rest and not rest.startswith(":"):
            return False
        given_port = rest[1:]
    else:
        name, _, given_port = value.partition(":")
    if given_port and given_port != str(port):
        return False
    return is_loopback(name)


class MetricsListener:
    """``start()`` binds (raising ``OSError`` when the port is taken) and serves on a thread."""

    __slots__ = ("_check_host", "_extra", "_host", "_limits", "_port", "_server", "_thread")

    def __init__(
        self,
        host: str,
        port: int,
        extra: DerivedFamilies | None = None,
        *,
        timeout: float = TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._host = host
        self._port = port
        self._extra = extra
        self._limits = (timeout, max_connections)
        self._check_host = is_loopback(host)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the one asked for, or the one the system chose for port 0)."""
        return self._server.server_address[1] if self._server is not None else self._port

    def start(self) -> None:
        timeout, max_connections = self._limits
        server = _Server((self._host, self._port), timeout=timeout, max_connections=max_connections)
        server.set_app(self._app)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="gateway-metrics", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        try:
            return self._answer(environ, start_response)
        except Exception:
            logger.exception("metrics: the scrape failed")
            return _answer(
                start_response,
                "500 Internal Server Error",
                "application/json",
                _FAILED,
                exc_info=sys.exc_info(),
            )

    def _answer(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if self._check_host and not host_allowed(environ.get("HTTP_HOST"), self.port):
            return _answer(
                start_response, "421 Misdirected Request", "application/json", _MISDIRECTED
            )
        if environ.get("PATH_INFO") != "/metrics":
            return _answer(start_response, "404 Not Found", "application/json", _NOT_FOUND)
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD"):
            return _answer(
                start_response, "405 Method Not Allowed", "application/json", _NOT_ALLOWED
            )
        body = scrape(self._extra)
        return _answer(start_response, "200 OK", CONTENT_TYPE, body, head=method == "HEAD")


def _answer(
    start_response: Any,
    status: str,
    content_type: str,
    body: bytes,
    *,
    head: bool = False,
    exc_info: Any = None,
) -> list[bytes]:
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
    ]
    if exc_info is None:
        start_response(status, headers)
    else:
        start_response(status, headers, exc_info)
    return [b"" if head else body]


#: The servers of this process: a forked child closes their sockets (see _close_in_child).
_servers: weakref.WeakSet[_Server] = weakref.WeakSet()


@dataclass(slots=True)
class _Waiting:
    """A connection whose request head is still arriving."""

    address: Any
    deadline: float
    head: bytes = b""


class _Server(WSGIServer):
    """Connections wait for their request head on the serving thread (a selector: a waiting
    connection costs a socket and its bytes, no thread); a complete head is answered on a thread
    of its own, at most ``max_connections`` at once. At most ``MAX_WAITING`` wait: one more
    closes the oldest. Each connection has ``timeout`` seconds in all from its accept."""

    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], *, timeout: float, max_connections: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.connection_timeout = timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        #: Every open connection (for a forked child to close), and what a handler starts with.
        self.connections: set[socket.socket] = set()
        self.accepted: dict[socket.socket, _Waiting] = {}
        super().__init__(address, _Handler)
        _servers.add(self)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        waiting: dict[socket.socket, _Waiting] = {}  # oldest first: the same timeout for all
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self.socket, selectors.EVENT_READ)
                while not self._stopping.is_set():
                    wait = poll_interval
                    if waiting:
                        oldest = next(iter(waiting.values()))
                        wait = min(wait, max(0.0, oldest.deadline - time.monotonic()))
                    for key, _ in selector.select(wait):
                        if key.fileobj is self.socket:
                            self._accept(selector, waiting)
                        else:
                            self._read(selector, waiting, key.fileobj)  # type: ignore[arg-type]
                    now = time.monotonic()
                    while waiting and next(iter(waiting.values())).deadline <= now:
                        self._drop(selector, waiting, next(iter(waiting)))
                for connection in list(waiting):
                    self._drop(selector, waiting, connection)
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        self._stopping.set()
        self._stopped.wait()

    def _accept(
        self, selector: selectors.BaseSelector, waiting: dict[socket.socket, _Waiting]
    ) -> None:
        try:
            connection, address = self.socket.accept()
        except OSError:
            return
        if len(waiting) >= MAX_WAITING:
            self._drop(selector, waiting, next(iter(waiting)))
        connection.setblocking(False)
        self.connections.add(connection)
        waiting[connection] = _Waiting(address, time.monotonic() + self.connection_timeout)
        selector.register(connection, selectors.EVENT_READ)

    def _read(
        self,
        selector: selectors.BaseSelector,
        waiting: dict[socket.socket, _Waiting],
        connection: socket.socket,
    ) -> None:
        entry = waiting[connection]
        try:
            chunk = connection.recv(16384)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(selector, waiting, connection)
            return
        entry.head += chunk
        # A complete head, or one too long for one: the handler answers it (414, 431, 400).
        if b"\n\r\n" not in entry.head and b"\n\n" not in entry.head and len(entry.head) < 65536:
            return
        selector.unregister(connection)
        del waiting[connection]
        if not self._slots.acquire(blocking=False):
            logger.debug("metrics: every connection slot is busy; one closed")
            self._close(connection)
            return
        connection.setblocking(True)
        self.accepted[connection] = entry
        try:
            threading.Thread(
                target=self._serve, args=(connection, entry.address), daemon=True
            ).start()
        except BaseException:
            self.accepted.pop(connection, None)
            self._slots.release()
            self._close(connection)
            raise

    def _serve(self, connection: socket.socket, address: Any) -> None:
        try:
            self.finish_request(connection, address)
        except Exception:  # noqa: BLE001 - logged by handle_error
            self.handle_error(connection, address)
        finally:
            self.accepted.pop(connection, None)
            self._slots.release()
            self.shutdown_request(connection)
            self.connections.discard(connection)

    def _drop(
        self,
        selector: selectors.BaseSelector,
        waiting: dict[socket.socket, _Waiting],
        connection: socket.socket,
    ) -> None:
        selector.unregister(connection)
        del waiting[connection]
        self._close(connection)

    def _close(self, connection: socket.socket) -> None:
        self.connections.discard(connection)
        connection.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (TimeoutError, ConnectionError)):
            logger.debug("metrics: a connection ended early (%s)", type(exc).__name__)
        else:
            logger.exception("metrics: a connection failed")


def _close_in_child() -> None:
    # A Granian worker is forked from the process that runs the listener: without this it would
    # hold the listening socket (the port stays taken while it lives) and every open connection.
    # close() only: shutdown() would end them for the parent too.
    for server in list(_servers):
        for connection in list(server.connections):
            connection.close()
        server.socket.close()
    _servers.clear()


os.register_at_fork(after_in_child=_close_in_child)


class _Deadline(io.RawIOBase):
    """The connection's socket, each read and write given what is left of its deadline; the
    bytes already read (the request head) are read first."""

    def __init__(self, connection: socket.socket, deadline: float, head: bytes) -> None:
        self._connection = connection
        self._deadline = deadline
        self._head = head

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            view = memoryview(buffer).cast("B")
            count = min(len(view), len(self._head))
            view[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        self._connection.settimeout(self._left())
        return self._connection.recv_into(buffer)

    def write(self, data: Any) -> int:
        self._connection.settimeout(self._left())
        self._connection.sendall(data)
        return memoryview(data).nbytes

    def _left(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the metrics connection's time is up")
        return left


class _Handler(WSGIRequestHandler):
    """One request per connection, within its deadline; errors as JSON, never on stderr."""

    server: _Server

    def setup(self) -> None:
        self.connection = self.request
        entry = self.server.accepted[self.connection]
        stream = _Deadline(self.connection, entry.deadline, entry.head)
        self.rfile = io.BufferedReader(stream)
        self.wfile = stream  # type: ignore[assignment]

    def handle(self) -> None:
        # wsgiref's handle(), with the ServerHandler below.
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        out: Any = self.wfile
        handler = _ServerHandler(self.rfile, out, sys.stderr, self.get_environ(), multithread=True)
        handler.request_handler = self
        app = self.server.get_app()
        assert app is not None
        handler.run(app)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        body = json.dumps({"code": "bad_request", "message": message or "Bad request."}).encode()
        self.close_connection = True
        self.request_version = "HTTP/1.0"  # never HTTP/0.9's answer without a head
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """No line per scrape on stderr (wsgiref's default), which would bypass the log format."""
        return


class _ServerHandler(ServerHandler):
    error_headers = [("Content-Type", "application/json")]  # noqa: RUF012
    error_body = _FAILED
    request_handler: WSGIRequestHandler

    def log_exception(self, exc_info: Any) -> None:
        logger.error("metrics: the answer failed", exc_info=exc_info)
