"""The mount's error answers in plain ASGI: the gateway's error document and its headers."""

from __future__ import annotations

import json

from gateway.asgi import Header, Send
from gateway.errors import error_document
from gateway.proxy.response_headers import SECURITY_HEADERS

# What PostgREST serves; anything else is answered 405 here (RFC 9110 section 15.5.6).
SERVED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ALLOW = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
SECURITY_HEADERS_LIST = list(SECURITY_HEADERS)


def json_error(status: int, code: str, message: str) -> tuple[int, list[Header], bytes]:
    body = json.dumps(error_document(code=code, message=message)).encode()
    headers: list[Header] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *SECURITY_HEADERS_LIST,
    ]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    elif status == 405:
        headers.append((b"allow", ALLOW))
    return status, headers, body


async def reply_error(
    send: Send, status: int, code: str, message: str, *, close: bool = False
) -> None:
    status, headers, body = json_error(status, code, message)
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
