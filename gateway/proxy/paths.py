"""Which requests the PostgREST mount owns, and the one path it sends upstream. Pure functions.

The mount decides on one representation of the path: ``raw_path``, the bytes the client sent.
The decoded ``scope["path"]`` is never sliced nor forwarded: a decision taken on one view and
applied to the other is how ``/rest%2F@host/`` once made the gateway fetch any host.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote_to_bytes

from gateway.proxy._errors import InvalidPath, InvalidQuery, PathNotMounted, QueryTooLong

# RFC 3986 section 3.3 path characters, plus those that browsers leave unescaped in a path
# (WHATWG URL, "path percent-encode set": [ ] |, and ^ in older ones). '%' only in an escape.
# Never '\' (some servers read it as '/'), '#', '?', controls, space or bytes over 0x7e.
_RAW_PATH = re.compile(rb"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/\[\]^|]|%[0-9A-Fa-f]{2})*")
# The query goes up byte for byte; only what would end or split the request target is refused.
_RAW_QUERY = re.compile(rb"[\x21-\x22\x24-\x7e]*")
# What no decoded segment may hold: a separator, or a control character (a NUL included).
_FORBIDDEN_DECODED = re.compile(rb"[/\\\x00-\x1f\x7f]")
_DOT_SEGMENTS = frozenset({b".", b".."})


def under_prefix(path: str, prefix: str) -> bool:
    """Whether ``path`` is the prefix itself or below it (a segment boundary, not ``/restx``)."""
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] == "/")


#: Where supabase-js looks for PostgREST (``<url>/rest/v1``): a second mount, beside the prefix.
SUPABASE_REST_PREFIX = "/rest/v1"


def mount_prefix(raw_path: bytes, path: str, prefixes: tuple[str, ...]) -> str | None:
    """Which mount a request goes to: the longest prefix its raw path is under.

    The raw path decides, as it decides everything at the mount. A request only its decoded
    path puts under a prefix (``/r%65st/v1/x``) goes to that prefix's mount, which refuses it
    (``mounted_path`` raises :class:`PathNotMounted`), exactly as with one prefix. ``None``: not
    PostgREST traffic at all.
    """
    ordered = sorted(prefixes, key=len, reverse=True)
    raw = raw_path.decode("latin-1")
    for prefix in ordered:
        if under_prefix(raw, prefix):
            return prefix
    for prefix in ordered:
        if under_prefix(path, prefix):
            return prefix
    return None


@lru_cache(maxsize=4096)
def mounted_path(raw_path: bytes, prefix: bytes) -> bytes:
    """The path PostgREST gets for ``raw_path``: what follows the prefix, starting with ``/``.

    Raises :class:`PathNotMounted` when the raw path is not under the prefix, and
    :class:`InvalidPath` for a path that a decoder anywhere along the way could read as another
    path: a dot segment, an escaped ``/`` or ``\\``, an empty segment (``//``), a control
    character or NUL, also after any number of decodings (``%252e%252e``). What is left means
    the same segments whether it is read raw or decoded, so the two views cannot disagree.
    """
    if raw_path == prefix:
        return b"/"
    if not raw_path.startswith(prefix) or raw_path[len(prefix) : len(prefix) + 1] != b"/":
        raise PathNotMounted("No such path.")
    rest = raw_path[len(prefix) :]
    if not _RAW_PATH.fullmatch(rest):
        raise InvalidPath("The path holds a character that must be percent-encoded.")
    segments = rest.split(b"/")
    # segments[0] is the empty string before the leading '/'; the last may be empty ('/x/').
    for index, segment in enumerate(segments[1:], start=1):
        if not segment and index != len(segments) - 1:
            raise InvalidPath("The path may not contain an empty segment ('//').")
        _check_segment(segment)
    return rest


def _check_segment(segment: bytes) -> None:
    while True:
        if segment in _DOT_SEGMENTS:
            raise InvalidPath("The path may not contain '.' or '..' segments.")
        if b"%" not in segment:
            return
        decoded = unquote_to_bytes(segment)
        if _FORBIDDEN_DECODED.search(decoded):
            raise InvalidPath("The path may not contain an encoded '/', '\\' or control character.")
        if decoded == segment:
            return
        segment = decoded


def check_query(query: bytes, limit: int) -> None:
    """Refuse a query string PostgREST should not parse: longer than ``limit`` bytes (its
    ``select=`` parser is super-linear in the length), or with bytes that end the target."""
    if len(query) > limit:
        raise QueryTooLong(f"The query string may be at most {limit} bytes.")
    if query and not _RAW_QUERY.fullmatch(query):
        raise InvalidQuery("The query string holds a character that must be percent-encoded.")
