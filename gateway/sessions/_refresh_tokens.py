"""Refresh tokens: opaque, 256 random bits, known to the store only by their SHA-256."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

# A fixed, greppable prefix lets secret scanners (GitHub, gitleaks) spot a leaked token.
PREFIX = "pgw_rt_"
_SHAPE = re.compile(r"^pgw_rt_[A-Za-z0-9_-]{43}$")


def _encode(raw: bytes) -> str:
    return PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def new_refresh_token() -> str:
    return _encode(secrets.token_bytes(32))


def looks_like_refresh_token(token: str) -> bool:
    return bool(_SHAPE.match(token))


def hash_refresh_token(token: str) -> str:
    """What the store keeps: SHA-256 is enough for 256-bit random secrets (no dictionary exists)."""
    return hashlib.sha256(token.encode()).hexdigest()


def successor_of(token: str, *, key: bytes) -> str:
    """The token that replaces ``token`` on refresh, derived rather than drawn.

    Deriving it (HMAC-SHA256 under a server secret) lets a client that lost a race (two tabs
    refreshing at once) receive the very same successor within the grace window, although the
    store never holds a token in plain text. Without the server secret nobody can compute it,
    so a stolen, already-used token does not lead to its successor.
    """
    return _encode(hmac.new(key, token.encode(), hashlib.sha256).digest())
