"""JSON request bodies: only JSON is read, and a body that fails to decode is the client's fault."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from litestar import Request
from litestar.connection.base import ASGIConnection
from litestar.exceptions import ClientException, HTTPException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import Operation, RequestBody

from gateway.web.runtime import runtime_of


class JSONRequest(Request[Any, Any, Any]):
    """A request whose ``json()`` turns every decoding failure into 400 ``invalid_request``.

    msgspec reports malformed JSON as its own error, which Litestar maps to 400; but invalid
    UTF-8 surfaces as ``UnicodeDecodeError`` and very deep nesting as ``RecursionError``, which
    would otherwise become 500s.
    """

    async def json(self) -> Any:
        try:
            return await super().json()
        except (UnicodeDecodeError, RecursionError):
            raise ClientException("The request body is not valid JSON.") from None

    async def body(self) -> bytes:
        # A client that stops sending mid-body must not hold the connection open for ever.
        idle = runtime_of(self.app.state).settings.body_idle_timeout
        try:
            async with asyncio.timeout(idle):
                return await super().body()
        except TimeoutError:
            raise HTTPException(
                status_code=408,
                detail="The request body stopped arriving.",
                headers={"Connection": "close"},
            ) from None


def require_json_content_type(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: a body must be declared ``application/json`` (or ``+json``), or not declared.

    HTML forms can post across sites without a CORS preflight, but only as
    ``application/x-www-form-urlencoded``, ``multipart/form-data`` or ``text/plain``. Refusing
    those keeps another site from signing a browser into an attacker's account (login CSRF).
    """
    content_type = connection.headers.get("content-type")
    if content_type is None:
        # No body, no type: fine (cookie-mode refresh and logout). A body without a type is
        # what fetch() sends for an untyped Blob, without a preflight: refused like a form.
        length = connection.headers.get("content-length", "0")
        if length.strip() in ("", "0") and "transfer-encoding" not in connection.headers:
            return
        raise HTTPException(status_code=415, detail="Send the request body as application/json.")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(status_code=415, detail="Send the request body as application/json.")


@dataclass
class OptionalBodyOperation(Operation):
    """OpenAPI operation whose request body may be left out (Litestar marks every body required)."""

    def __post_init__(self) -> None:
        if isinstance(self.request_body, RequestBody):
            self.request_body.required = False
