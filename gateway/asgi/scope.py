"""What the gateway reads off an ASGI scope: the request id, the path as sent, the answer state."""

from __future__ import annotations

import re
import secrets

from gateway.asgi.types import Scope

# A client-supplied id is kept only when it is short and plain, so it cannot forge log lines.
_ACCEPTABLE_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")


def request_id_of(scope: Scope) -> bytes:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id" and _ACCEPTABLE_ID.match(value):
            return bytes(value)
    return secrets.token_hex(12).encode()


def raw_path_of(scope: Scope) -> bytes:
    """The path as the client sent it, escapes intact; b"" when the server gives none.

    Cut at the first '?': some servers and test clients put the query string into raw_path
    too, and a query (``?access_token=…``) must never reach a log line or the path checks.
    """
    raw: bytes = scope.get("raw_path") or b""
    return raw.partition(b"?")[0]


def started_answer(scope: Scope) -> bool:
    """Whether the answer to this request (inside a :class:`RequestLog`) has begun."""
    return bool(scope.get("state", {}).get("response_status"))
