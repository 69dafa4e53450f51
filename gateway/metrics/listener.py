"""GATEWAY_METRICS_PORT: a plain HTTP listener that serves ``GET /metrics`` and nothing else.

It runs in ``gateway serve``'s own process (not a worker) on a thread, so it answers for every
worker through the multiprocess files, and stays up while workers restart. It is meant for the
scraper's network (GATEWAY_METRICS_HOST), so it asks for no token.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from gateway.metrics.exposition import CONTENT_TYPE, DerivedFamilies, scrape

_NOT_FOUND = json.dumps({"code": "not_found", "message": "Not Found."}).encode()
_NOT_ALLOWED = json.dumps(
    {"code": "method_not_allowed", "message": "Only GET and HEAD are allowed."}
).encode()


class MetricsListener:
    """``start()`` binds (raising ``OSError`` when the port is taken) and serves on a thread."""

    __slots__ = ("_extra", "_host", "_port", "_server", "_thread")

    def __init__(self, host: str, port: int, extra: DerivedFamilies | None = None) -> None:
        self._host = host
        self._port = port
        self._extra = extra
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._server = make_server(
            self._host, self._port, self._app, server_class=_Server, handler_class=_Quiet
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="gateway-metrics", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
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
    start_response: Any, status: str, content_type: str, body: bytes, *, head: bool = False
) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
        ],
    )
    return [b"" if head else body]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _Quiet(WSGIRequestHandler):
    """No line per scrape on stderr (wsgiref's default), which would bypass the log format."""

    def log_message(self, format: str, *args: Any) -> None:
        return
