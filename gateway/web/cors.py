"""CORS for the PostgREST mount: the gateway answers for its origins, PostgREST's are replaced."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gateway.asgi import ASGIApp, Header, Message, Receive, Scope, Send
from gateway.proxy import merge_vary
from gateway.settings import Settings

ALLOWED_METHODS = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS = (
    "authorization, content-type, accept, prefer, range, range-unit, accept-profile, "
    "content-profile, x-csrf-token, x-request-id, presign, apikey, x-client-info, "
    "x-supabase-api-version"
)
EXPOSED_HEADERS = (
    "content-range, range-unit, location, content-location, preference-applied, "
    "content-profile, x-request-id"
)
PREFLIGHT_MAX_AGE = b"600"
VARY = (b"Origin",)


class Cors:
    """Origins in GATEWAY_CORS_ORIGINS may call with credentials; every other origin gets no
    CORS header at all, so the browser keeps the answer from its script."""

    __slots__ = ("_allowed", "enabled")

    def __init__(self, origins: Sequence[str]) -> None:
        self._allowed = frozenset(origin.encode() for origin in origins)
        self.enabled = bool(self._allowed)

    def allows(self, origin: bytes | None) -> bool:
        return origin is not None and origin in self._allowed

    def response_headers(self, origin: bytes | None) -> list[Header]:
        """The CORS fields of an answer, ``Vary`` aside (merged with the app's, see below)."""
        headers: list[Header] = []
        if origin is not None and self.allows(origin):
            headers += [
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-credentials", b"true"),
                (b"access-control-expose-headers", EXPOSED_HEADERS.encode()),
            ]
        return headers

    def preflight_headers(self, origin: bytes | None) -> list[Header]:
        headers: list[Header] = [(b"vary", b"Origin")]
        if origin is not None and self.allows(origin):
            headers += [
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-credentials", b"true"),
                (b"access-control-allow-methods", ALLOWED_METHODS),
                (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                (b"access-control-max-age", PREFLIGHT_MAX_AGE),
            ]
        return headers


def cors_middleware(settings: Settings) -> Callable[[ASGIApp], ASGIApp]:
    """One CORS policy for every path: the gateway's own endpoints and the PostgREST mount."""
    cors = Cors(settings.cors_origins)

    def wrap(app: ASGIApp) -> ASGIApp:
        if not cors.enabled:
            return app

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
            preflight = (
                scope["method"] == "OPTIONS"
                and origin is not None
                and any(k == b"access-control-request-method" for k, _ in scope["headers"])
            )
            if preflight:
                # Answered here: neither Litestar's routing nor PostgREST ever sees a preflight.
                await send(
                    {
                        "type": "http.response.start",
                        "status": 204,
                        "headers": cors.preflight_headers(origin),
                    }
                )
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            extra = cors.response_headers(origin)

            async def send_with_cors(message: Message) -> None:
                if message["type"] == "http.response.start":
                    kept: list[Header] = []
                    vary: list[bytes] = []
                    for k, v in message.get("headers", ()):
                        key = k.lower()
                        if key == b"vary":
                            vary.append(v)  # the app's Vary (PostgREST's too) is kept
                        elif not key.startswith(b"access-control-"):
                            kept.append((k, v))
                    message["headers"] = [*kept, (b"vary", merge_vary(vary, VARY)), *extra]
                await send(message)

            await app(scope, receive, send_with_cors)

        return middleware

    return wrap
