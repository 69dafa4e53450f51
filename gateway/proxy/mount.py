"""The PostgREST mount: plain ASGI from request to upstream and back, read top to bottom."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from gateway.asgi import (
    Header,
    Message,
    Receive,
    Scope,
    Send,
    client_address_of,
    is_trusted,
    parse_networks,
    raw_path_of,
    request_id_of,
)
from gateway.errors import GatewayError
from gateway.metrics import metrics
from gateway.proxy._errors import InvalidPath, InvalidPresign, MethodNotServed
from gateway.proxy._headers import (
    check_request_headers,
    strip_cookies,
    upstream_request_headers,
)
from gateway.proxy._presign import ENRICHMENT_SLOTS, enrichable, send_enriched
from gateway.proxy._request_body import (
    BodyStalled,
    BodyTooLarge,
    ClientDisconnected,
    RequestBody,
    drop_tracebacks,
)
from gateway.proxy.dependencies import MountDependencies
from gateway.proxy.error_answers import SERVED_METHODS, reply_error
from gateway.proxy.paths import check_query, mounted_path
from gateway.proxy.response_headers import DownstreamHeaders
from gateway.sessions import (
    CSRF_HEADER,
    MissingCredentials,
    SessionRevoked,
    UserSuspended,
    access_token,
    check_csrf,
    cookie_names,
    needs_csrf,
    read_credentials,
)
from gateway.settings import Settings
from gateway.storage import Enrichment, enrichment_for
from gateway.tokens import is_anon_key
from gateway.upstream import UnsendableRequest, UpstreamAddress, UpstreamClient, UpstreamError

logger = logging.getLogger("gateway.proxy")


BODYLESS_STATUSES = frozenset({204, 304})
CHUNK = 64 * 1024
# What can go wrong between the request going up and the answer's last byte going down.
FORWARD_FAILURES = (
    ClientDisconnected,
    BodyTooLarge,
    BodyStalled,
    TimeoutError,
    UpstreamError,
)


class PostgrestMount:
    """Forwards ``{GATEWAY_PROXY_PREFIX}/{path}`` to PostgREST.

    Per request, in three steps: :meth:`_target` decides on the raw path, the method, the query
    and the header block; :meth:`_authorize` finds the credentials (bearer header, or the
    access cookie with a CSRF check on unsafe methods), verifies the token (cached) and checks
    the session and user against the revocation set; :meth:`_forward` rewrites the headers and
    streams the body up and the answer down. Everything that can be computed once is computed
    in ``__init__``.
    """

    __slots__ = (
        "_access_cookie",
        "_csrf_cookie",
        "_dependencies",
        "_downstream",
        "_enrichments",
        "_gateway_cookies",
        "_idle",
        "_max_body",
        "_max_query",
        "_networks",
        "_prefix",
        "_profiles",
        "_upstream",
        "_upstream_duration",
    )

    def __init__(self, settings: Settings, dependencies: Callable[[], MountDependencies]) -> None:
        # A callable, not the dependencies: the web layer makes them in its lifespan, after the
        # mount is built.
        self._dependencies = dependencies
        self._prefix = settings.proxy_prefix.encode()
        self._upstream = UpstreamAddress.parse(settings.upstream_url)
        self._max_body = settings.proxy_max_body
        self._max_query = settings.proxy_max_query
        self._idle = settings.body_idle_timeout
        # The gateway's own schema holds password hashes and sessions: never selectable here,
        # even if someone listed it in GATEWAY_POSTGREST_SCHEMAS (or in PostgREST's db-schemas).
        self._profiles = frozenset(
            schema.encode()
            for schema in settings.postgrest_schemas
            if schema != settings.database_schema
        )
        self._networks = parse_networks(tuple(settings.trusted_proxies))
        names = cookie_names(settings)
        self._access_cookie = names.access.encode()
        self._csrf_cookie = names.csrf.encode()
        self._gateway_cookies = frozenset(name.encode() for name in names.all)
        self._downstream = DownstreamHeaders(
            prefix=self._prefix, upstream_origin=self._upstream.origin, cookie_names=names.all
        )
        # Bounds the Presign'd answers this process buffers and signs at once (_presign.py).
        self._enrichments = asyncio.Semaphore(ENRICHMENT_SLOTS)
        # gateway_upstream_duration_seconds: PostgREST's time to the head of its answer.
        self._upstream_duration = metrics().upstream_duration

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # PostgREST reads methods case-blind; the checks here must as well.
        method = scope["method"].upper()
        headers: list[Header] = scope["headers"]
        try:
            target = self._target(scope, method, headers)
            dependencies = self._dependencies()
            # Who is asking: verified before a byte of the body is read.
            authorization = self._authorize(dependencies, method, headers)
            # Only with buckets configured, and only for a GET: every other request pays nothing.
            enrichment = (
                _enrichment(dependencies, headers, authorization)
                if dependencies.storage is not None and method == "GET"
                else None
            )
        except GatewayError as exc:
            await reply_error(send, exc.status, exc.code, exc.message)
            return
        await self._forward(
            scope, receive, send, dependencies.http, method, target, authorization, enrichment
        )

    def _target(self, scope: Scope, method: str, headers: list[Header]) -> bytes:
        """Where this request goes upstream, or the GatewayError that refuses to forward it.

        Decided on the raw path alone (see paths.py), then built from the configured upstream's
        parts. (CORS, preflights included, is cors_middleware's.)
        """
        path = mounted_path(raw_path_of(scope), self._prefix)
        if method not in SERVED_METHODS:
            raise MethodNotServed("PostgREST does not serve this method.")
        query: bytes = scope.get("query_string", b"")
        check_query(query, self._max_query)
        check_request_headers(
            headers, profiles=self._profiles, needs_host=scope.get("http_version") == "1.1"
        )
        try:
            return self._upstream.target(path, query)
        except UnsendableRequest:
            # paths.py refuses every such byte first; this is the last line, never reached.
            raise InvalidPath("The path holds a character that must be percent-encoded.") from None

    def _authorize(
        self, dependencies: MountDependencies, method: str, headers: list[Header]
    ) -> bytes | None:
        """The Authorization header to send upstream, or None for an anonymous request.

        The credentials are read from ``headers`` (every ``Cookie`` field) by the one parser
        /auth uses too, never from the cookie list :meth:`_forward` makes, so the two can never
        disagree.
        """
        presented = read_credentials(headers, self._gateway_cookies, CSRF_HEADER.encode())
        found = access_token(presented, self._access_cookie)
        if found is None:
            return None
        token, via_cookie = found
        claims = dependencies.tokens.verify(dependencies.keys.ring, token)
        if is_anon_key(claims):
            # supabase-js's anon key (gateway keys anon-key) stands for nobody: the request goes
            # up with no token at all, so PostgREST uses its db-anon-role, as for no token.
            return None
        # Suspension first: it also revokes the user's sessions, and the answer should say why.
        if claims.get("sub") in dependencies.revocations.suspended_users:
            raise UserSuspended("This account is suspended.")
        if claims.get("sid") in dependencies.revocations.revoked_sessions:
            raise SessionRevoked("This session has ended; sign in again.")
        if via_cookie and needs_csrf(method):
            check_csrf(presented, self._csrf_cookie)
        return b"Bearer " + token.encode("latin-1")

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        http: UpstreamClient,
        method: str,
        target: bytes,
        authorization: bytes | None,
        enrichment: Enrichment | None = None,
    ) -> None:
        """Up to PostgREST and back down, streaming both ways (a Presign'd answer is read whole).

        ``started`` says whether the status line is out: a failure before it gets an error
        answer, a failure after it a cut connection, so no request is ever answered twice.
        """
        headers: list[Header] = scope["headers"]
        content_length = _first(headers, b"content-length")
        if content_length is not None and not _within(content_length, self._max_body):
            await self._reply_too_large(send, close=False)
            return
        cookies = [value for name, value in headers if name == b"cookie"]
        out_headers = self._upstream_headers(scope, cookies, authorization, content_length)
        # An answer that depends on who asked is for that browser's cache only.
        credentialed = authorization is not None or bool(cookies)
        has_body = content_length not in (None, b"0") or _first(headers, b"transfer-encoding")
        request_body = RequestBody(receive, self._max_body, self._idle) if has_body else None
        body = request_body.__aiter__() if request_body is not None else None
        # Every message down waits at most the body idle timeout for the client to take it: a
        # client that stops reading would otherwise hold the upstream connection for ever.
        downstream = _DeadlineSend(send, self._idle)
        send = downstream
        started = False
        asked = time.perf_counter()
        try:
            async with http.request(
                method.encode(),
                target,
                out_headers,
                body,
                chunked=body is not None and content_length is None,
            ) as answer:
                self._upstream_duration.observe(time.perf_counter() - asked)
                # Errors, non-JSON and bodyless answers stream as any other: nothing to sign.
                if enrichment is not None and enrichable(answer):
                    rewritten = self._downstream(answer.headers, credentialed=credentialed)
                    await send_enriched(send, answer, rewritten, enrichment, self._enrichments)
                    return
                # Set first: once the status line is handed over, even a send that timed out
                # may have written it, and no error answer can follow.
                started = True
                await send(
                    {
                        "type": "http.response.start",
                        "status": answer.status,
                        "headers": self._downstream(answer.headers, credentialed=credentialed),
                    }
                )
                if method == "HEAD" or answer.status in BODYLESS_STATUSES:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                elif (length := answer.content_length) is not None and length <= CHUNK:
                    # Most answers: one message instead of two (each send passes three wrappers).
                    await send({"type": "http.response.body", "body": await answer.read()})
                elif (whole := answer.body_if_complete()) is not None:
                    # PostgREST answers chunked; most arrive whole with their head: one message.
                    await send({"type": "http.response.body", "body": whole})
                else:
                    async for chunk in answer.chunks():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        except UnsendableRequest:
            # A header value with CR, LF or NUL: refused before a byte went upstream.
            await reply_error(
                send,
                400,
                "invalid_header",
                "A header holds a character that cannot be sent.",
                close=request_body is not None,
            )
        except FORWARD_FAILURES as exc:
            drop_tracebacks(exc)
            if downstream.stalled:
                # Returning mid-answer makes the server cut the connection to the client.
                logger.warning("client stopped reading the answer")
                return
            if started:
                # The status line is out, so no error answer can follow. Returning without the
                # last body message makes the server close the connection mid-body: the client
                # sees a truncated answer (no final chunk, or fewer bytes than Content-Length),
                # never a complete-looking one.
                logger.warning("upstream failed mid-answer: %s", type(exc).__name__)
                return
            await self._reply_failure(send, exc, request_body)
        finally:
            downstream.close()

    def _upstream_headers(
        self,
        scope: Scope,
        cookies: list[bytes],
        authorization: bytes | None,
        content_length: bytes | None,
    ) -> list[Header]:
        """The request's header block as PostgREST gets it."""
        peer = scope["client"][0] if scope.get("client") else None
        trusted = peer is not None and bool(self._networks) and is_trusted(peer, self._networks)
        client_ip = client_address_of(scope, self._networks)
        return upstream_request_headers(
            scope["headers"],
            upstream_host=self._upstream.host_header,
            client_ip=(client_ip or "unknown").encode(),
            proto=scope.get("scheme", "http").encode(),
            trusted_peer=trusted,
            authorization=authorization,
            cookie=strip_cookies(b"; ".join(cookies), self._gateway_cookies) if cookies else b"",
            # The id RequestLog chose (and answers with), so both logs name one request.
            request_id=_request_id(scope),
            content_length=content_length,
        )

    async def _reply_failure(
        self, send: Send, exc: Exception, request_body: RequestBody | None
    ) -> None:
        """Answer a request that did not make it to PostgREST and back.

        What went wrong with the body is read from ``request_body`` (it also knows a stall or a
        vanished client that surfaced as another exception). Whenever part of the body is still
        unread, the answer closes the connection: those bytes would otherwise be taken for the
        next request.
        """
        unread = request_body is not None and not request_body.finished
        if request_body is not None and request_body.disconnected:
            return
        if request_body is not None and request_body.stalled:
            await reply_error(
                send, 408, "request_timeout", "The request body stopped arriving.", close=True
            )
        elif isinstance(exc, BodyTooLarge) or (request_body is not None and request_body.too_large):
            await self._reply_too_large(send, close=unread)
        elif isinstance(exc, TimeoutError):
            await reply_error(
                send, 504, "upstream_timeout", "PostgREST did not answer in time.", close=unread
            )
        else:
            logger.warning("upstream failed: %s", type(exc).__name__)
            await reply_error(
                send, 502, "upstream_unavailable", "PostgREST cannot be reached.", close=unread
            )

    async def _reply_too_large(self, send: Send, *, close: bool) -> None:
        await reply_error(
            send,
            413,
            "payload_too_large",
            f"The request body may be at most {self._max_body} bytes.",
            close=close,
        )


class _DeadlineSend:
    """``send`` with a deadline on each message: past it, :class:`TimeoutError`, and
    ``stalled`` says the client (not PostgREST) was the one that stopped.

    One watchdog timer per request instead of an ``asyncio.timeout`` per message (those cost
    a fifth of the mount's Python time in a py-spy profile): each send notes when it began,
    the timer looks every ``timeout`` seconds and cancels the request's task only while a send
    has been waiting longer than that. :meth:`close` must end every use (a ``finally``), so the
    timer never outlives the request it watches.
    """

    __slots__ = ("_loop", "_send", "_since", "_task", "_timeout", "_timer", "stalled")

    def __init__(self, send: Send, timeout: float) -> None:
        self._send = send
        self._timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[object] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._since: float | None = None
        self.stalled = False

    async def __call__(self, message: Message) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            self._timer = loop.call_later(self._timeout, self._look)
        self._since = loop.time()
        try:
            await self._send(message)
        except asyncio.CancelledError:
            # Only the watchdog's own cancel, alone: one from outside (a disconnect, shutdown)
            # landing with it must stay a cancellation.
            if self.stalled and self._task is not None and self._task.cancelling() == 1:
                # The watchdog's cancel, not one from outside: undo it and say what happened.
                self._task.uncancel()
                raise TimeoutError("the client stopped reading the answer") from None
            raise
        finally:
            self._since = None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _look(self) -> None:
        assert self._loop is not None
        since = self._since
        waited = 0.0 if since is None else self._loop.time() - since
        if since is not None and waited >= self._timeout and self._task is not None:
            self.stalled = True
            self._timer = None
            self._task.cancel()
            return
        self._timer = self._loop.call_later(self._timeout - waited, self._look)


def _enrichment(
    dependencies: MountDependencies, headers: list[Header], authorization: bytes | None
) -> Enrichment | None:
    """What a ``Presign`` header asks for, for the caller just verified; None without one."""
    values = [value for name, value in headers if name == b"presign"]
    if not values:
        return None
    if len(values) > 1:
        raise InvalidPresign("Send one Presign header.")
    if authorization is None:
        raise MissingCredentials("Presign needs a signed-in caller: send an access token.")
    assert dependencies.storage is not None
    # A cache hit: _authorize verified this token a moment ago.
    claims = dependencies.tokens.verify(dependencies.keys.ring, authorization[7:].decode())
    return enrichment_for(values[0], dependencies.storage, claims=claims)


def _request_id(scope: Scope) -> bytes:
    chosen = scope.get("state", {}).get("request_id")
    return chosen.encode() if isinstance(chosen, str) else request_id_of(scope)


def _first(headers: list[Header], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _within(content_length: bytes, limit: int) -> bool:
    return content_length.isdigit() and int(content_length) <= limit


__all__ = ["PostgrestMount"]
