"""Header rules of the PostgREST mount on the way down: what the browser gets. Pure logic."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gateway.asgi import Header
from gateway.proxy._headers import connection_tokens, is_hop_by_hop

# Every API answer of the mount, errors included: a browser never sniffs a JSON body into HTML,
# and nothing it renders from this origin may load anything or be framed.
SECURITY_HEADERS: tuple[Header, ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
)
# Not passed down: the gateway's own replace them, they advertise PostgREST's version, or
# (Refresh) they would redirect the browser as Location does, unchecked.
NOT_PASSED_DOWN = frozenset(
    {b"server", b"x-content-type-options", b"content-security-policy", b"refresh"}
)
# The answer depends on these request fields: a shared cache must key on them (RFC 9110 12.5.5).
CREDENTIAL_VARY = (b"Cookie", b"Authorization")
COOKIE_PREFIXES = (b"__host-", b"__secure-")


def merge_vary(values: Iterable[bytes], extra: Sequence[bytes]) -> bytes:
    """One ``Vary`` value: the fields of ``values`` then ``extra``, each once (case-blind);
    ``*`` stays ``*`` (RFC 9110 section 12.5.5)."""
    merged: list[bytes] = []
    seen: set[bytes] = set()
    for field in [token.strip() for value in values for token in value.split(b",")] + [*extra]:
        key = field.lower()
        if key == b"*":
            return b"*"
        if field and key not in seen:
            seen.add(key)
            merged.append(field)
    return b", ".join(merged)


def private_cache_control(values: Sequence[bytes]) -> bytes:
    """``Cache-Control`` for an answer to a request that carried credentials: ``private``
    first, unless PostgREST already said ``private`` or ``no-store``; ``public`` and
    ``s-maxage`` (both for shared caches) dropped. RFC 9111 section 5.2.2."""
    directives = [d.strip() for value in values for d in value.split(b",") if d.strip()]
    names = [d.lower() for d in directives]
    # Only the bare forms: private="field" lets a shared cache store the rest of the answer.
    if b"private" in names or b"no-store" in names:
        return b", ".join(directives)
    kept = [d for d, n in zip(directives, names, strict=True) if not _shared_only(n)]
    return b", ".join([b"private", *kept])


def _shared_only(directive: bytes) -> bool:
    return directive == b"public" or directive.split(b"=", 1)[0].strip() == b"s-maxage"


class DownstreamHeaders:
    """PostgREST's response headers as the client gets them; every rule fixed at start-up.

    Dropped: hop-by-hop fields, PostgREST's CORS fields (CORS belongs to the gateway, see
    cors.py), ``Server``, a ``Set-Cookie`` for one of the gateway's cookie names (in any prefix
    form, or with no name at all: a browser sends a nameless cookie as a bare ``name=value``), a
    ``Location`` that leaves the mount. Rewritten: ``Location`` under the prefix, ``Vary`` and,
    for a credentialed request, ``Cache-Control``. Everything else (``Content-Range``,
    ``Preference-Applied``, ``Range-Unit`` …) is kept as is.
    """

    __slots__ = ("_cookie_names", "_prefix", "_upstream_origin")

    def __init__(self, *, prefix: bytes, upstream_origin: bytes, cookie_names: Iterable[str]):
        self._prefix = prefix
        self._upstream_origin = upstream_origin
        bases = {_without_prefix(name.encode().lower()) for name in cookie_names}
        self._cookie_names = frozenset(p + base for base in bases for p in (b"", *COOKIE_PREFIXES))

    def __call__(self, headers: Iterable[Header], *, credentialed: bool) -> list[Header]:
        materialized = list(headers)
        dropped = connection_tokens(materialized)
        out: list[Header] = []
        vary: list[bytes] = []
        cache_control: list[bytes] = []
        for name, value in materialized:
            key = name.lower()
            if key in dropped or is_hop_by_hop(key) or key.startswith(b"access-control-"):
                continue
            if key in NOT_PASSED_DOWN:
                continue
            if key == b"vary":
                vary.append(value)
                continue
            if key == b"cache-control" and credentialed:
                cache_control.append(value)
                continue
            if key == b"set-cookie" and self._is_gateway_cookie(value):
                continue
            if key in (b"location", b"content-location"):
                location = self.location(value)
                if location is None:
                    continue
                value = location
            out.append((key, value))
        out.append((b"vary", merge_vary(vary, CREDENTIAL_VARY)))
        if credentialed:
            out.append((b"cache-control", private_cache_control(cache_control)))
        out.extend(SECURITY_HEADERS)
        return out

    def location(self, value: bytes) -> bytes | None:
        """A ``Location`` PostgREST sent, under the mount: ``/todos?id=eq.1`` is
        ``/rest/todos?id=eq.1`` for the client. Anything that would lead elsewhere (another
        origin, ``//host``, ``/\\host``, a relative reference) is None: not passed down."""
        origin = self._upstream_origin
        if value.startswith(origin) and value[len(origin) : len(origin) + 1] in (b"", b"/", b"?"):
            value = value[len(origin) :]
            if not value.startswith(b"/"):
                value = b"/" + value
        if value.startswith(b"/") and value[1:2] not in (b"/", b"\\"):
            return self._prefix + value
        return None

    def _is_gateway_cookie(self, set_cookie: bytes) -> bool:
        pair = set_cookie.split(b";", 1)[0]
        name, equals, _ = pair.partition(b"=")
        name = name.strip().lower()
        return not equals or not name or name in self._cookie_names


def _without_prefix(name: bytes) -> bytes:
    for prefix in COOKIE_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name
