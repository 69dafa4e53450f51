"""Header rules of the PostgREST mount: what goes upstream, what comes back. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Header = tuple[bytes, bytes]

# RFC 9110 section 7.6.1: hop-by-hop fields describe one connection and are never forwarded.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by the gateway alone; a client's own value is dropped (unless a trusted proxy sent it).
# Every X-Forwarded-* counts, not a list of them: PostgREST hands all headers to SQL.
FORWARDING_PREFIX = b"x-forwarded-"
FORWARDING = frozenset({b"forwarded", b"x-real-ip"})
# Replaced by the gateway's own: the upstream never sees them, or they are recomputed.
REPLACED = frozenset({b"host", b"authorization", b"cookie", b"x-request-id", b"content-length"})


def is_forwarding(key: bytes) -> bool:
    return key in FORWARDING or key.startswith(FORWARDING_PREFIX)


def is_hop_by_hop(key: bytes) -> bool:
    # RFC 9110 names Proxy-Authenticate/-Authorization; every Proxy-* is meant for a proxy.
    return key in HOP_BY_HOP or key.startswith(b"proxy-")


def normalized_name(name: bytes) -> bytes:
    """Header names compare case-blind, and many servers treat ``_`` as ``-`` (CGI heritage):
    ``X_Forwarded_For`` must not slip past a rule about ``X-Forwarded-For``."""
    return name.lower().replace(b"_", b"-")


def connection_tokens(headers: Iterable[Header]) -> frozenset[bytes]:
    """Header names that ``Connection`` declares hop-by-hop (RFC 9110 section 7.6.1)."""
    named: set[bytes] = set()
    for name, value in headers:
        if normalized_name(name) == b"connection":
            named.update(normalized_name(t.strip()) for t in value.split(b",") if t.strip())
    return frozenset(named)


def strip_cookies(cookie_header: bytes, names: frozenset[bytes]) -> bytes:
    """The Cookie header without the gateway's own cookies.

    PostgREST hands every cookie to SQL (``request.cookies``); a refresh token must never reach
    the database, nor its logs.
    """
    kept = [
        pair.strip()
        for pair in cookie_header.split(b";")
        if pair.strip() and pair.split(b"=", 1)[0].strip() not in names
    ]
    return b"; ".join(kept)


def cookie_value(cookie_headers: Sequence[bytes], name: bytes) -> bytes | None:
    for header in cookie_headers:
        for pair in header.split(b";"):
            key, _, value = pair.strip().partition(b"=")
            if key == name:
                return value
    return None


def upstream_request_headers(
    headers: Sequence[Header],
    *,
    upstream_host: bytes,
    client_ip: bytes,
    proto: bytes,
    trusted_peer: bool,
    authorization: bytes | None,
    cookie: bytes,
    request_id: bytes,
    content_length: bytes | None,
) -> list[Header]:
    """The headers sent to PostgREST for one request."""
    dropped = REPLACED | connection_tokens(headers)
    out: list[Header] = []
    forwarded_for: list[bytes] = []
    original_host = b""
    for name, value in headers:
        key = normalized_name(name)
        if key == b"host":
            original_host = value
        if key in dropped or is_hop_by_hop(key):
            continue
        if is_forwarding(key):
            # Believed only from a trusted proxy, and only spelled exactly: an underscore
            # variant never comes from a proxy that follows the standards.
            if not (trusted_peer and name.lower() == key):
                continue
            if key == b"x-forwarded-for":
                forwarded_for.append(value)  # rebuilt below with our hop appended
                continue
        out.append((name.lower(), value))
    # RFC 7239 / de-facto X-Forwarded-For: the chain so far, then the address we saw.
    out.append((b"x-forwarded-for", b", ".join([*forwarded_for, client_ip])))
    if not any(k == b"x-forwarded-proto" for k, _ in out):
        out.append((b"x-forwarded-proto", proto))
    if not any(k == b"x-forwarded-host" for k, _ in out) and original_host:
        out.append((b"x-forwarded-host", original_host))
    out.append((b"host", upstream_host))
    out.append((b"x-request-id", request_id))
    if authorization is not None:
        out.append((b"authorization", authorization))
    if cookie:
        out.append((b"cookie", cookie))
    if content_length is not None:
        out.append((b"content-length", content_length))
    return out


def rewrite_location(value: bytes, *, prefix: bytes, upstream_origin: bytes) -> bytes:
    """Put a ``Location`` PostgREST sent back under the mount: ``/todos?id=eq.1`` is
    ``/rest/todos?id=eq.1`` for the client. Locations elsewhere are left alone."""
    if value.startswith(upstream_origin):
        value = value[len(upstream_origin) :] or b"/"
    if value.startswith(b"/") and not value.startswith(b"//"):
        return prefix + value
    return value


def downstream_response_headers(
    headers: Iterable[Header], *, prefix: bytes, upstream_origin: bytes
) -> list[Header]:
    """PostgREST's response headers as the client gets them.

    Hop-by-hop fields are dropped, and so are PostgREST's CORS fields: CORS belongs to the
    gateway (see cors.py). Every other header (Content-Range, Preference-Applied, Range-Unit …)
    is kept as is.
    """
    materialized = list(headers)
    dropped = connection_tokens(materialized)
    out: list[Header] = []
    for name, value in materialized:
        key = name.lower()
        if key in dropped or is_hop_by_hop(key) or key.startswith(b"access-control-"):
            continue
        if key in (b"location", b"content-location"):
            value = rewrite_location(value, prefix=prefix, upstream_origin=upstream_origin)
        out.append((key, value))
    return out
