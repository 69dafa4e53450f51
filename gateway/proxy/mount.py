"""The PostgREST mount: plain ASGI from request to upstream and back, read top to bottom."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import aiohttp
from yarl import URL

from gateway.client_address import client_address, is_trusted, parse_networks
from gateway.errors import GatewayError
from gateway.proxy.headers import (
    Header,
    downstream_response_headers,
    strip_cookies,
    upstream_request_headers,
)
from gateway.request_log import request_id_of
from gateway.runtime import Runtime
from gateway.sessions.cookies import CSRF_HEADER, cookie_names
from gateway.sessions.credentials import access_token, check_csrf, needs_csrf, read_credentials
from gateway.sessions.errors import SessionRevoked, UserSuspended
from gateway.settings import Settings

logger = logging.getLogger("gateway.proxy")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BODYLESS_STATUSES = frozenset({204, 304})
CHUNK = 64 * 1024


class ClientDisconnected(Exception):
    pass


class BodyTooLarge(Exception):
    pass


class BodyStalled(Exception):
    pass


# PostgREST copies every request header into request.headers for SQL; a client gets a few
# dozen kilobytes of them, not the megabyte the HTTP server would accept.
MAX_HEADER_BYTES = 32 * 1024


def json_error(status: int, code: str, message: str) -> tuple[int, list[Header], bytes]:
    body = json.dumps({"code": code, "message": message}).encode()
    headers: list[Header] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    return status, headers, body


class PostgrestMount:
    """Forwards ``{GATEWAY_PROXY_PREFIX}/{path}`` to PostgREST.

    Per request: answer CORS preflights; find the credentials (bearer header, or the access
    cookie with a CSRF check on unsafe methods); verify the token (cached) and check the
    session and user against the revocation set; rewrite the headers; stream the body up and
    the answer down. Everything that can be computed once is computed in ``__init__``.
    """

    __slots__ = (
        "_access_cookie",
        "_csrf_cookie",
        "_gateway_cookies",
        "_idle",
        "_max_body",
        "_networks",
        "_prefix",
        "_runtime",
        "_upstream",
        "_upstream_host",
        "_upstream_origin",
    )

    def __init__(self, settings: Settings, runtime: Callable[[], Runtime]) -> None:
        self._runtime = runtime
        self._prefix = settings.proxy_prefix.encode()
        self._upstream = settings.upstream_url
        self._max_body = settings.proxy_max_body
        self._idle = settings.body_idle_timeout
        parts = urlsplit(settings.upstream_url)
        self._upstream_host = parts.netloc.encode()
        self._upstream_origin = f"{parts.scheme}://{parts.netloc}".encode()
        self._networks = parse_networks(tuple(settings.trusted_proxies))
        names = cookie_names(settings)
        self._access_cookie = names.access.encode()
        self._csrf_cookie = names.csrf.encode()
        self._gateway_cookies = frozenset(name.encode() for name in names.all)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        headers: list[Header] = scope["headers"]
        # 1. Where the request goes. (CORS, preflights included, is cors_middleware's job.)
        # raw_path is the path as sent (percent-escapes intact) and still holds the prefix;
        # without it, Litestar's mount has already cut the prefix off scope["path"].
        raw_path: bytes | None = scope.get("raw_path")
        upstream_path = (
            raw_path[len(self._prefix) :] if raw_path is not None else scope["path"].encode()
        ) or b"/"
        if _escapes_mount(upstream_path):
            await _reply_error(
                send,
                400,
                "invalid_path",
                "The path may not contain '.' or '..' segments.",
            )
            return

        if sum(len(name) + len(value) for name, value in headers) > MAX_HEADER_BYTES:
            await _reply_error(
                send,
                431,
                "request_header_fields_too_large",
                f"The request headers may total at most {MAX_HEADER_BYTES} bytes.",
            )
            return

        # 2. Who is asking: verified before a byte of the body is read.
        runtime = self._runtime()
        cookies = [value for name, value in headers if name == b"cookie"]
        try:
            authorization = self._authorize(runtime, method, headers, cookies)
        except GatewayError as exc:
            await _reply_error(send, exc.status, exc.code, exc.message)
            return

        # 3. The request as PostgREST gets it.
        peer = scope["client"][0] if scope.get("client") else None
        trusted = peer is not None and bool(self._networks) and is_trusted(peer, self._networks)
        forwarded = [v.decode("latin-1") for n, v in headers if n == b"x-forwarded-for"]
        client_ip = client_address(peer, forwarded, self._networks)
        content_length = _first(headers, b"content-length")
        if content_length is not None and not _within(content_length, self._max_body):
            await _reply_error(
                send,
                413,
                "payload_too_large",
                f"The request body may be at most {self._max_body} bytes.",
            )
            return
        has_body = content_length not in (None, b"0") or _first(headers, b"transfer-encoding")
        out_headers = upstream_request_headers(
            headers,
            upstream_host=self._upstream_host,
            client_ip=(client_ip or "unknown").encode(),
            proto=scope.get("scheme", "http").encode(),
            trusted_peer=trusted,
            authorization=authorization,
            cookie=strip_cookies(b"; ".join(cookies), self._gateway_cookies) if cookies else b"",
            # The id RequestLog chose (and answers with), so both logs name one request.
            request_id=_request_id(scope),
            content_length=content_length,
        )
        query: bytes = scope.get("query_string", b"")
        url = self._upstream + (upstream_path + (b"?" + query if query else b"")).decode("latin-1")

        # 4. Up and back down, streaming both ways.
        request_body = RequestBody(receive, self._max_body, self._idle) if has_body else None
        body = request_body.__aiter__() if request_body is not None else None
        try:
            async with runtime.http.request(
                method,
                URL(url, encoded=True),
                headers=[(n.decode("latin-1"), v.decode("latin-1")) for n, v in out_headers],
                data=body,
                allow_redirects=False,
            ) as answer:
                response_headers = downstream_response_headers(
                    answer.raw_headers, prefix=self._prefix, upstream_origin=self._upstream_origin
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": answer.status,
                        "headers": response_headers,
                    }
                )
                if method == "HEAD" or answer.status in BODYLESS_STATUSES:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                elif answer.content_length is not None and answer.content_length <= CHUNK:
                    # Most answers: one message instead of two (each send passes three wrappers).
                    body_bytes = await answer.read()
                    await send({"type": "http.response.body", "body": body_bytes})
                else:
                    async for chunk in answer.content.iter_chunked(CHUNK):
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (
            ClientDisconnected,
            BodyTooLarge,
            BodyStalled,
            TimeoutError,
            aiohttp.ClientError,
        ) as exc:
            _drop_tracebacks(exc)
            await self._reply_failure(send, exc, request_body)

    async def _reply_failure(
        self, send: Send, exc: Exception, request_body: RequestBody | None
    ) -> None:
        """Answer a request that did not make it to PostgREST and back.

        aiohttp wraps exceptions from the body stream in its own, so what went wrong with the
        body is read from ``request_body``. Whenever part of the body is still unread, the
        answer closes the connection: those bytes would otherwise be taken for the next request.
        """
        unread = request_body is not None and not request_body.finished
        if request_body is not None and request_body.disconnected:
            return
        if request_body is not None and request_body.stalled:
            await _reply_error(
                send, 408, "request_timeout", "The request body stopped arriving.", close=True
            )
        elif isinstance(exc, BodyTooLarge) or (request_body is not None and request_body.too_large):
            await _reply_error(
                send,
                413,
                "payload_too_large",
                f"The request body may be at most {self._max_body} bytes.",
                close=unread,
            )
        elif isinstance(exc, TimeoutError):
            await _reply_error(
                send, 504, "upstream_timeout", "PostgREST did not answer in time.", close=unread
            )
        else:
            logger.warning("upstream failed: %s", type(exc).__name__)
            await _reply_error(
                send, 502, "upstream_unavailable", "PostgREST cannot be reached.", close=unread
            )

    def _authorize(
        self, runtime: Runtime, method: str, headers: list[Header], cookies: list[bytes]
    ) -> bytes | None:
        """The Authorization header to send upstream, or None for an anonymous request.

        The credentials are read from ``headers`` (every ``Cookie`` field) by the one parser
        /auth uses too; ``cookies`` is not consulted, so the two can never disagree.
        """
        presented = read_credentials(headers, self._gateway_cookies, CSRF_HEADER.encode())
        found = access_token(presented, self._access_cookie)
        if found is None:
            return None
        token, via_cookie = found
        claims = runtime.tokens.verify(runtime.keys.ring, token)
        # Suspension first: it also revokes the user's sessions, and the answer should say why.
        if claims.get("sub") in runtime.revocations.suspended_users:
            raise UserSuspended("This account is suspended.")
        if claims.get("sid") in runtime.revocations.revoked_sessions:
            raise SessionRevoked("This session has ended; sign in again.")
        if via_cookie and needs_csrf(method):
            check_csrf(presented, self._csrf_cookie)
        return b"Bearer " + token.encode("latin-1")


def _request_id(scope: Scope) -> bytes:
    chosen = scope.get("state", {}).get("request_id")
    return chosen.encode() if isinstance(chosen, str) else request_id_of(scope)


def _first(headers: list[Header], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


@lru_cache(maxsize=4096)
def _escapes_mount(path: bytes) -> bool:
    segments = unquote_to_bytes(path).replace(b"\\", b"/").split(b"/")
    return any(segment in (b".", b"..") for segment in segments)


def _within(content_length: bytes, limit: int) -> bool:
    return content_length.isdigit() and int(content_length) <= limit


class RequestBody:
    """The request body as it arrives, streamed upstream and refused past ``limit`` bytes.

    What went wrong is kept here as well as raised: aiohttp wraps exceptions from a body
    stream into its own, and the mount must still tell 413 and a vanished client apart.
    """

    __slots__ = ("_idle", "_limit", "_receive", "disconnected", "finished", "stalled", "too_large")

    def __init__(self, receive: Receive, limit: int, idle: float) -> None:
        self._receive = receive
        self._limit = limit
        self._idle = idle
        self.too_large = False
        self.disconnected = False
        self.stalled = False
        self.finished = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        while True:
            try:
                # A client that stops sending mid-body (slowloris) would otherwise hold this
                # connection and a pooled upstream connection for as long as it likes.
                async with asyncio.timeout(self._idle):
                    message = await self._receive()
            except TimeoutError:
                self.stalled = True
                raise BodyStalled from None
            if message["type"] == "http.disconnect":
                self.disconnected = True
                raise ClientDisconnected
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self._limit:
                self.too_large = True
                raise BodyTooLarge
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                self.finished = True
                return


def _drop_tracebacks(exc: BaseException) -> None:
    """Cut the tracebacks of ``exc`` and the exceptions chained to it.

    aiohttp keeps the exception it raised in a frame that its own traceback holds, a cycle
    that only the cyclic garbage collector frees. Until then the cycle holds this request's
    frames, hence the server's ``receive``, and Granian keeps a connection open while its
    request body can still be read: a stalled client's connection stayed open after the 408
    that said ``Connection: close``. Only the links are cut; the frames are left alone
    (``traceback.clear_frames`` would also finalize a coroutine still suspended in one).
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__


async def _reply(send: Send, status: int, headers: list[Header], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _reply_error(
    send: Send, status: int, code: str, message: str, *, close: bool = False
) -> None:
    status, headers, body = json_error(status, code, message)
    if close:
        headers.append((b"connection", b"close"))
    await _reply(send, status, headers, body)


__all__ = ["PostgrestMount"]
