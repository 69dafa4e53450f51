"""One log line per request, with a request id that the client can quote back to us."""

from __future__ import annotations

import logging
import time
from typing import Any

from gateway.asgi import ASGIApp, Message, Receive, Scope, Send, raw_path_of, request_id_of

logger = logging.getLogger("gateway.request")


class RequestLog:
    """ASGI middleware: sets ``X-Request-Id`` on the answer and logs method, path, status, time.

    The path is the one the client sent (``raw_path``), read before any mount cuts its prefix
    off ``scope["path"]``: ``/rest/auth/login`` is never logged as ``/auth/login``. An answer
    that started but never finished (the upstream broke mid-body, the client saw a truncated
    answer) is logged with ``truncated=true``. The query string, headers and bodies are never
    logged: they can carry tokens or passwords.
    """

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id.decode()
        if not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, _IdOnTheAnswer(send, request_id, state))
            return
        path = raw_path_of(scope).decode("latin-1") or scope["path"]
        started = time.perf_counter()
        status = 0
        finished = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = state["response_status"] = message["status"]
                headers: list[Any] = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id))
                message["headers"] = headers
            elif not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            client = scope.get("client")
            logger.info(
                "request id=%s method=%s path=%s status=%s ms=%.1f peer=%s%s",
                request_id.decode(),
                _printable(scope["method"]),
                _printable(path),
                status or "-",
                (time.perf_counter() - started) * 1000,
                client[0] if client else "-",
                " truncated=true" if status and not finished else "",
            )


class _IdOnTheAnswer:
    """The answer's ``send`` when no line is logged (GATEWAY_LOG_LEVEL warning or above): the
    request id and the status the error handlers read, without the path, the clock and the
    line's arguments, which nobody would see."""

    __slots__ = ("_request_id", "_send", "_state")

    def __init__(self, send: Send, request_id: bytes, state: dict[str, Any]) -> None:
        self._send = send
        self._request_id = request_id
        self._state = state

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._state["response_status"] = message["status"]
            message["headers"] = [*message.get("headers", ()), (b"x-request-id", self._request_id)]
        await self._send(message)


def _printable(path: str) -> str:
    return path.encode("unicode_escape").decode("ascii")[:512]
