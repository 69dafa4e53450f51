"""Header rules of the PostgREST mount on the way up: what PostgREST gets. Pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from gateway.asgi import Header
from gateway.proxy._errors import BadHost, HeadersTooLarge, ProfileNotAllowed

# PostgREST copies every request header into request.headers for SQL; a client gets a few
# dozen kilobytes of them in a hundred fields, not what the HTTP server would accept.
MAX_HEADER_BYTES = 32 * 1024
MAX_HEADER_FIELDS = 100

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
# Presign is the gateway's own request (see _presign.py): PostgREST never sees it.
REPLACED = frozenset(
    {b"host", b"authorization", b"cookie", b"x-request-id", b"content-length", b"presign"}
)
# Fields that claim who the client is, or rewrite the URL or the method, as some CDN, load
# balancer or framework sets them. From a client they are forgeries; PostgREST would hand them
# to SQL (request.headers) as if a proxy had vouched for them. Never forwarded, whoever the
# peer: the gateway states the client address itself (X-Forwarded-For). docs/proxy.md lists them.
CLIENT_CLAIMS = frozenset(
    {
        b"true-client-ip",
        b"cf-connecting-ip",
        b"cf-connecting-ipv6",
        b"cf-pseudo-ipv4",
        b"x-client-ip",
        b"x-cluster-client-ip",
        b"fastly-client-ip",
        b"fly-client-ip",
        b"x-appengine-user-ip",
        b"x-azure-clientip",
        b"x-azure-socketip",
        b"x-envoy-external-address",
        b"x-original-forwarded-for",
        b"x-originating-ip",
        b"x-proxyuser-ip",
        b"x-remote-ip",
        b"x-remote-addr",
        b"x-real-client-ip",
        b"client-ip",
        b"x-forwarded",
        b"x-host",
        b"x-original-host",
        b"x-original-url",
        b"x-original-uri",
        b"x-rewrite-url",
        b"x-envoy-original-path",
        b"x-http-method-override",
        b"x-http-method",
        b"x-method-override",
        b"x-original-method",
    }
)
# The same class by shape, for the names no list can finish: a field whose name says it carries
# a client address, an authenticated user or a rewritten URL or method (``X-Client-IP-Address``,
# ``Remote-User``, ``X-Auth-Request-Email``, ``X-Amzn-Oidc-Identity``) is never forwarded.
CLIENT_CLAIM_MARKERS = (
    b"client-ip",
    b"connecting-ip",
    b"remote-addr",
    b"remote-ip",
    b"remote-user",
    b"authenticated-user",
    b"auth-user",
    b"webauth-user",
    b"original-url",
    b"original-uri",
    b"rewrite-url",
    b"method-override",
)
CLIENT_CLAIM_PREFIXES = (
    b"x-auth-request-",
    b"x-amzn-oidc-",
    b"x-ms-client-principal",
    b"x-goog-authenticated-user-",
    b"cf-access-",
)
CLIENT_CLAIM_NAMES = frozenset({b"x-user", b"x-user-id", b"x-user-email", b"x-email"})
# The gateway's own business: the CSRF token is checked here and means nothing to PostgREST;
# supabase-js's project key (apikey) grants nothing beyond the bearer token, and a key pasted
# there by mistake must not reach SQL through request.headers.
GATEWAY_ONLY = frozenset({b"x-csrf-token", b"apikey"})
# The gateway streams a request body up without waiting for a 100 Continue (and never passes
# one down): an Expect would only make PostgREST answer 100 first, or 417.
ANSWERED_HERE = frozenset({b"expect"})
NEVER_FORWARDED = REPLACED | CLIENT_CLAIMS | GATEWAY_ONLY | ANSWERED_HERE
PROFILE_HEADERS = frozenset({b"accept-profile", b"content-profile"})


@lru_cache(maxsize=4096)
def is_client_claim(key: bytes) -> bool:
    """Whether the (normalized) field name claims a client identity or rewrites the request.

    Cached: names repeat from request to request, so the markers are scanned once per name.
    """
    return (
        key in CLIENT_CLAIMS
        or key in CLIENT_CLAIM_NAMES
        or key.startswith(CLIENT_CLAIM_PREFIXES)
        or any(marker in key for marker in CLIENT_CLAIM_MARKERS)
    )


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
    named = connection_tokens(headers)
    dropped = NEVER_FORWARDED | named if named else NEVER_FORWARDED
    out: list[Header] = []
    forwarded_for: list[bytes] = []
    original_host = b""
    for name, value in headers:
        key = normalized_name(name)
        if key == b"host":
            original_host = value
        if key in dropped or is_hop_by_hop(key) or is_client_claim(key):
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


def check_request_headers(
    headers: Sequence[Header], *, profiles: frozenset[bytes], needs_host: bool
) -> None:
    """Refuse a header block PostgREST should not get, in one pass.

    More than ``MAX_HEADER_FIELDS`` fields or ``MAX_HEADER_BYTES`` bytes: 431. Two ``Host``
    fields, an empty one, or none where HTTP/1.1 requires one (RFC 9112 section 3.2): 400. An
    ``Accept-Profile`` or ``Content-Profile`` naming a schema outside ``profiles``: 406, so no
    request selects a schema PostgREST should not serve, whatever its own configuration says.
    """
    if len(headers) > MAX_HEADER_FIELDS:
        raise HeadersTooLarge(f"A request may carry at most {MAX_HEADER_FIELDS} header fields.")
    total = 0
    hosts = 0
    for name, value in headers:
        total += len(name) + len(value)
        key = name.lower()
        if key == b"host":
            # An empty Host names no authority (RFC 9112 section 3.2), and it is what Granian
            # stands in for a request that sent none: both are refused.
            if not value.strip():
                raise BadHost("The request must carry exactly one non-empty Host header.")
            hosts += 1
        elif (
            key.endswith(b"profile")
            and normalized_name(key) in PROFILE_HEADERS
            and value not in profiles  # checked as forwarded: no stripping
        ):
            raise ProfileNotAllowed(
                "The schema named in Accept-Profile or Content-Profile is not served here."
            )
    if total > MAX_HEADER_BYTES:
        raise HeadersTooLarge(f"The request headers may total at most {MAX_HEADER_BYTES} bytes.")
    if hosts > 1 or (hosts == 0 and needs_host):
        raise BadHost("The request must carry exactly one Host header.")
