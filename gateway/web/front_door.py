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
from urllib.parse import quote

from gateway.asgi import ASGIApp, Receive, Scope, Send, raw_path_of, started_answer
from gateway.proxy import PostgrestMount, json_error, mount_prefix
from gateway.settings import Settings
from gateway.web.cors import cors_middleware
from gateway.web.request_log import RequestLog

logger = logging.getLogger("gateway.proxy")


# What quote() leaves alone when a server gives no raw_path: RFC 3986 pchar and '/'.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


class FrontDoor:
    __slots__ = ("_app", "_prefixes", "_proxies")

    def __init__(
        self,
        app: ASGIApp,
        mount: PostgrestMount,
        settings: Settings,
        more_mounts: dict[str, PostgrestMount] | None = None,
    ) -> None:
        """``mount`` serves GATEWAY_PROXY_PREFIX; ``more_mounts`` other prefixes (``/rest/v1``)."""
        self._app = app
        cors = cors_middleware(settings)
        mounts = {**(more_mounts or {}), settings.proxy_prefix: mount}
        self._proxies: dict[str, ASGIApp] = {
            prefix: RequestLog(cors(each), group="rest") for prefix, each in mounts.items()
        }
        self._prefixes = tuple(self._proxies)

    @property
    def app(self) -> ASGIApp:
        """The application every scope that is not PostgREST traffic goes to (Litestar, in
        the server): the one place its lifespan state, the runtime, can be reached from."""
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path: str = scope["path"]
        if not scope.get("raw_path"):
            # The path as sent is what the mount decides on; without it, the decoded one
            # re-encoded is the only representation, and it is used for everything.
            scope["raw_path"] = quote(path, safe=_PATH_SAFE).encode()
        # A mount gets every request that either view puts under its prefix (a raw path under
        # it is under it decoded too), and decides on the raw path alone (gateway/proxy/
        # paths.py): '/r%65st/x' reads '/rest/x' decoded and gets the mount's 404 JSON. Which
        # mount, when there are two, is decided on the raw path first as well.
        prefix = mount_prefix(raw_path_of(scope), path, self._prefixes)
        if prefix is None:
            await self._app(scope, receive, send)
            return
        try:
            await self._proxies[prefix](scope, receive, send)
        except Exception as exc:
            # A bug, not a client's doing: the client learns nothing, the operator the type and
            # the traceback (never the headers: they carry tokens).
            logger.exception("unhandled %s at the PostgREST mount", type(exc).__name__)
            status, headers, body = json_error(
                500, "internal_error", "The gateway failed to handle the request."
            )
            if started_answer(scope):
                return  # the server ends the connection: a truncated answer, never a second
            with contextlib.suppress(Exception):
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
