"""What the server runs: PostgREST traffic goes straight to the mount, the rest to Litestar.

Litestar's routing and its two exception middlewares cost a proxied request about a fifth of
the gateway's CPU (docs/benchmarks.md, "Profile") and add nothing to the mount, which is plain
ASGI and answers its own errors. So the server's entry point picks the mount by path before
Litestar is involved, with the same RequestLog and CORS policy around it that Litestar applies;
every other scope (lifespan included) goes to Litestar.
"""

from __future__ import annotations

import contextlib
import logging

from gateway.proxy.cors import cors_middleware
from gateway.proxy.mount import PostgrestMount, json_error
from gateway.request_log import ASGIApp, Receive, RequestLog, Scope, Send
from gateway.settings import Settings

logger = logging.getLogger("gateway.proxy")


class FrontDoor:
    __slots__ = ("_app", "_prefix", "_proxy", "_under")

    def __init__(self, app: ASGIApp, mount: PostgrestMount, settings: Settings) -> None:
        self._app = app
        self._prefix = settings.proxy_prefix
        self._under = settings.proxy_prefix + "/"
        self._proxy = RequestLog(cors_middleware(settings)(mount))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        if path != self._prefix and not path.startswith(self._under):
            await self._app(scope, receive, send)
            return
        # As Litestar's mount does: the mount reads the path as sent from raw_path, and this
        # only when a server gives none.
        scope["path"] = path[len(self._prefix) :] or "/"
        try:
            await self._proxy(scope, receive, send)
        except Exception as exc:
            # A bug, not a client's doing: the client learns nothing, the operator the type and
            # the traceback (never the headers: they carry tokens).
            logger.exception("unhandled %s at the PostgREST mount", type(exc).__name__)
            status, headers, body = json_error(
                500, "internal_error", "The gateway failed to handle the request."
            )
            # When the answer had already started, this second start is refused: nothing to do.
            with contextlib.suppress(Exception):
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
