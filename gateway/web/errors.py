"""The one place where exceptions become HTTP answers: ``{"code", "message"}`` with a status."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

import asyncpg
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from sqlalchemy.exc import InterfaceError, OperationalError

from gateway.errors import GatewayError, StoreUnavailable, error_document

logger = logging.getLogger("gateway.errors")

# Codes for the statuses the framework itself raises (routing, body limits, validation).
_FRAMEWORK_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    408: "request_timeout",
    429: "too_many_requests",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[dict[str, str]]:
    all_headers = dict(headers or {})
    if status == 401:
        # RFC 6750 section 3: a 401 names the scheme the client should use.
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    return Response(
        error_document(code=code, message=message),
        status_code=status,
        media_type=MediaType.JSON,
        headers=all_headers,
    )


def _gateway_error(request: Request[Any, Any, Any], exc: GatewayError) -> Response[dict[str, str]]:
    # For the request log, which counts sign-in outcomes by code (gateway/web/observed.py).
    request.scope.setdefault("state", {})["error_code"] = exc.code
    headers = getattr(exc, "headers", None)
    return error_response(exc.status, exc.code, exc.message, headers)


def _validation_error(
    _: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, str]]:
    return error_response(400, "invalid_request", _validation_message(exc))


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, str]]:
    status = exc.status_code
    code = _FRAMEWORK_CODES.get(status) or _snake(HTTPStatus(status).phrase)
    message = exc.detail if status < 500 else HTTPStatus(status).phrase
    headers = dict(exc.headers or {}) if status < 500 else None
    if status == 429 and headers is not None:
        # Litestar's limiter says when the window resets (RateLimit-Reset); clients and proxies
        # that know only RFC 9110 look for Retry-After.
        reset = {k.lower(): v for k, v in headers.items()}.get("ratelimit-reset")
        if reset is not None:
            headers.setdefault("Retry-After", reset)
    return error_response(status, code, _sentence(message), headers)


def _store_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    # The store went away (PostgreSQL restarting, a network cut): a 503 the client may retry,
    # not a 500. The exception's text can name hosts, so only its type is logged.
    logger.warning(
        "store unavailable (%s) on %s %s", type(exc).__name__, request.method, request.url.path
    )
    return error_response(
        503, StoreUnavailable.code, "The gateway's store is unavailable; try again shortly."
    )


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    # The client learns nothing about the failure; the operator gets the traceback. The engine
    # hides SQL parameters, so no password hash or token reaches the log through it.
    logger.exception("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return error_response(500, "internal_error", "The gateway failed to handle the request.")


def json_not_found(response: Response[Any]) -> Response[Any]:
    """An ``after_request`` hook: Litestar answers an unknown ``/schema/...`` path with an HTML
    page of its own (not an exception), and every error of ours is JSON."""
    if response.status_code == 404:
        return error_response(404, "not_found", "Not Found.")
    return response


def _validation_message(exc: ValidationException) -> str:
    extra = exc.extra if isinstance(exc.extra, list) else []
    details = []
    for item in extra[:3]:
        if isinstance(item, dict):
            key = item.get("key")
            message = str(item.get("message", "is invalid"))
            details.append(f"{key}: {message}" if key else message)
    if details:
        return _sentence("The request is invalid: " + "; ".join(details))
    return _sentence(exc.detail or "The request is invalid")


def _snake(phrase: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


# What reaching the store can raise when it is down: asyncpg's connection errors surface
# unwrapped (ConnectionRefusedError) when a new connection is made, wrapped by SQLAlchemy
# (OperationalError, InterfaceError) on a connection that breaks mid-use.
STORE_OUTAGES: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
)

exception_handlers: dict[type[Exception] | int, Any] = {
    **dict.fromkeys(STORE_OUTAGES, _store_unavailable),
    GatewayError: _gateway_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected_error,
}
