"""The ASGI types every plain-ASGI part of the gateway uses, defined once.

Not ``litestar.types``: its ``Scope`` is a union of TypedDicts, so every read of a key a server
adds (``raw_path``, ``state``) or a websocket scope lacks (``method``) would need a cast on the
hot path; with them, mypy --strict finds 24 errors in code that is correct. Litestar accepts these
looser callables wherever it takes an ASGI app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: One header field as ASGI carries it: the name (lower case from servers) and the value.
Header = tuple[bytes, bytes]

__all__ = ["ASGIApp", "Header", "Message", "Receive", "Scope", "Send"]
