"""The headers every answer of the gateway's own endpoints carries (not the PostgREST mount's).

- ``X-Content-Type-Options: nosniff``: a browser never reads a JSON answer as a script or a page.
- ``Content-Security-Policy: default-src 'none'; frame-ancestors 'none'``: an answer opened as
  a page runs nothing, loads nothing and cannot be framed; the API docs page, when turned on,
  gets its own policy that allows exactly its pinned files (see ``api_docs.py``).
- ``Cache-Control: no-store`` on every ``/auth`` answer (tokens, ``/auth/me``, errors: RFC 6749
  section 5.1, RFC 9111 section 5.2.2.5), whatever a handler set; on the other answers too
  unless the handler chose its own (the JWKS is public and cacheable for its ``max-age``).

Litestar runs its middleware only once a route has matched, so its router's own 404 and 405
answers pass them by (litestar issue 175). :func:`wrap_own_answers` wraps the whole handler of
the application instead, with :class:`gateway.web.request_log.RequestLog` outside, so those answers
get these headers, an ``X-Request-Id`` and their log line like every other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from gateway.asgi import ASGIApp, Header, Message, Receive, Scope, Send
from gateway.web.request_log import RequestLog

JSON_POLICY: Final = b"default-src 'none'; frame-ancestors 'none'"
AUTH_PREFIX: Final = "/auth"

_NOSNIFF: Final = (b"x-content-type-options", b"nosniff")
_NO_STORE: Final = b"no-store"


def routed_path(path: str) -> str:
    """``path`` as the router matches it: Litestar ignores trailing slashes, so ``/demo/`` is
    answered by the ``/demo`` handler and must get that page's policy (a pure function)."""
    return path.rstrip("/") or "/"


def own_answer_headers(
    path: str, headers: list[Header], *, page_policies: Mapping[str, bytes]
) -> list[Header]:
    """``headers`` of an answer to ``path`` with the gateway's rules applied (a pure function)."""
    names = {name.lower() for name, _ in headers}
    is_auth = path == AUTH_PREFIX or path.startswith(AUTH_PREFIX + "/")
    result = [
        (name, value)
        for name, value in headers
        if not (is_auth and name.lower() == b"cache-control")
        and name.lower() not in (b"x-content-type-options", b"content-security-policy")
    ]
    result.append(_NOSNIFF)
    result.append((b"content-security-policy", page_policies.get(routed_path(path), JSON_POLICY)))
    if is_auth or b"cache-control" not in names:
        result.append((b"cache-control", _NO_STORE))
    return result


class OwnAnswerHeaders:
    """ASGI middleware applying :func:`own_answer_headers`; the mount's paths pass untouched."""

    __slots__ = ("_app", "_policies", "_prefixes", "_under")

    def __init__(
        self, app: ASGIApp, *, proxy_prefixes: tuple[str, ...], page_policies: Mapping[str, bytes]
    ) -> None:
        self._app = app
        self._prefixes = frozenset(proxy_prefixes)
        self._under = tuple(prefix + "/" for prefix in proxy_prefixes)
        self._policies = dict(page_policies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path in self._prefixes or path.startswith(self._under):
            # PostgREST's answers are the mount's business (and only reach here in process).
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[Any] = list(message.get("headers", ()))
                message["headers"] = own_answer_headers(path, headers, page_policies=self._policies)
            await send(message)

        await self._app(scope, receive, send_with_headers)


def wrap_own_answers(
    handler: ASGIApp, *, proxy_prefixes: tuple[str, ...], page_policies: Mapping[str, bytes]
) -> ASGIApp:
    """The application's whole handler, with the request log and the headers around it."""
    return RequestLog(
        OwnAnswerHeaders(handler, proxy_prefixes=proxy_prefixes, page_policies=page_policies),
        proxy_prefixes=proxy_prefixes,
    )
