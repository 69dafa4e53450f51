"""Which object keys a caller may have URLs for: pure decisions on the key as it is stored."""

from __future__ import annotations

import re

# S3's limit on a key, in UTF-8 bytes.
MAX_KEY_BYTES = 1024
# A key is refused if it holds a control character (C0, DEL, C1), a lone surrogate (no UTF-8
# for it), an empty segment ("//", a leading "/") or a "." or ".." segment: S3 takes keys
# literally, but clients, SDKs and S3-compatible servers that normalize paths do not, and a key
# that means two objects is one the gateway will not sign.
_MALFORMED = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]|^/|//|(?:^|/)\.\.?(?:/|$)")


def key_problem(key: object) -> str | None:
    """Why ``key`` is no object key the gateway signs, or None when it is one."""
    if not isinstance(key, str):
        return "is not a string"
    if not key:
        return "is empty"
    if _MALFORMED.search(key) is not None:
        return "holds a control character, an empty segment or a '.' or '..' segment"
    if len(key) > MAX_KEY_BYTES // 4 and len(key.encode()) > MAX_KEY_BYTES:
        return f"is longer than {MAX_KEY_BYTES} bytes"
    return None


def signable_within(key: object, prefix: str) -> bool:
    """True for a well-formed key under ``prefix`` (the caller's): the enrichment's per-row test."""
    return (
        isinstance(key, str)
        and key.startswith(prefix)
        and len(key) > len(prefix)
        and key_problem(key) is None
    )
