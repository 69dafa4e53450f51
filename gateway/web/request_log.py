"""One log line and the metrics per request, with a request id that the client can quote back."""

from __future__ import annotations

import logging
import time
from typing import Any

from gateway.asgi import ASGIApp, Message, Receive, Scope, Send, raw_path_of, request_id_of
from gateway.metrics import RequestCounter, metrics
from gateway.web.log_format import FIELDS, current_request_id
from gateway.web.observed import AUTH_ACTION, AuthCounters, auth_event, route_group

logger = logging.getLogger("gateway.request")


class RequestLog:
    """ASGI middleware: sets ``X-Request-Id`` on the answer, counts the request
    (``gateway_requests_total`` and its duration, by route group) and logs method, path,
    status, time.

    The path is the one the client sent (``raw_path``), read before any mount cuts its prefix
    off ``scope["path"]``: ``/rest/auth/login`` is never logged as ``/auth/login``. An answer
    that started but never finished (the upstream broke mid-body, the client saw a truncated
    answer) is logged with ``truncated=true``. The query string, headers and bodies are never
    logged: they can carry tokens or passwords.

    ``group`` fixes the route group (the PostgREST mounts' ``rest``); without it the group is
    read off the path, with ``proxy_prefixes`` counted as ``rest``.
    """

    __slots__ = ("_auth", "_counter", "_group", "_prefixes", "app")

    def __init__(
        self, app: ASGIApp, *, group: str | None = None, proxy_prefixes: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self._group = group
        self._prefixes = proxy_prefixes
        every = metrics()
        self._counter = RequestCounter(every)
        self._auth = AuthCounters(every)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # Both before a mount cuts its prefix off.
        path: str = scope["path"]
        raw_path = raw_path_of(scope)
        request_id = request_id_of(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id_text = request_id.decode()
        context = current_request_id.set(request_id_text)
        answer = _Answer(send, request_id, state)
        try:
            await self.app(scope, receive, answer)
        finally:
            try:
                self._after(scope, path, raw_path, request_id_text, state, answer, started)
            finally:
                current_request_id.reset(context)

    def _after(
        self,
        scope: Scope,
        path: str,
        raw_path: bytes,
        request_id: str,
        state: dict[str, Any],
        answer: _Answer,
        started: float,
    ) -> None:
        status = answer.status
        seconds = time.perf_counter() - started
        group = self._group or route_group(path, self._prefixes)
        # 0: the application ended without an answer (the server answers 500 or cuts).
        self._counter.record(group, scope["method"], status, seconds)
        if status:
            event = auth_event(state.get(AUTH_ACTION), status, state.get("error_code"))
            if event is not None:
                self._auth.count(event)
        if logger.isEnabledFor(logging.INFO):
            _log(
                scope,
                path,
                raw_path,
                request_id,
                group,
                status,
                seconds,
                truncated=not answer.finished,
            )


class _Answer:
    """The answer's ``send``: the request id on its head, its status and end noted."""

    __slots__ = ("_request_id", "_send", "_state", "finished", "status")

    def __init__(self, send: Send, request_id: bytes, state: dict[str, Any]) -> None:
        self._send = send
        self._request_id = request_id
        self._state = state
        self.status = 0
        self.finished = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = self._state["response_status"] = message["status"]
            message["headers"] = [*message.get("headers", ()), (b"x-request-id", self._request_id)]
        elif not message.get("more_body", False):
            self.finished = True
        await self._send(message)


def _log(
    scope: Scope,
    decoded_path: str,
    raw_path: bytes,
    request_id: str,
    group: str,
    status: int,
    seconds: float,
    *,
    truncated: bool,
) -> None:
    path = _printable(raw_path.decode("latin-1") or decoded_path)
    method = _printable(scope["method"])
    client = scope.get("client")
    peer = client[0] if client else "-"
    milliseconds = seconds * 1000
    truncated = truncated and bool(status)
    logger.info(
        "request id=%s method=%s path=%s status=%s ms=%.1f peer=%s%s",
        request_id,
        method,
        path,
        status or "-",
        milliseconds,
        peer,
        " truncated=true" if truncated else "",
        extra={
            FIELDS: {
                "method": method,
                "group": group,
                "path": path,
                "status": status or None,
                "duration_ms": round(milliseconds, 3),
                "peer": peer,
                **({"truncated": True} if truncated else {}),
            }
        },
    )


def _printable(path: str) -> str:
    return path.encode("unicode_escape").decode("ascii")[:512]
