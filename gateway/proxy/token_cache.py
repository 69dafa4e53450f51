"""A bounded cache of verified access tokens, so a repeated token costs a dictionary look-up."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from gateway.metrics import metrics
from gateway.tokens import LEEWAY_SECONDS, KeyRing, verify_bearer_token


class VerifiedTokens:
    """Token → claims, for tokens this process has verified: access tokens and anon keys.

    An entry is used only while (a) the token has not expired, with the same leeway as the
    verification itself, and (b) the key that signed it is still in the ring: a pruned key's
    tokens are refused at once although they are cached. The ``kid`` is the key's RFC 7638
    thumbprint, so the same kid in a newer ring is the same key. When full, the oldest entry
    goes first.
    """

    __slots__ = (
        "_allowed_roles",
        "_anon_role",
        "_audience",
        "_entries",
        "_hits",
        "_issuer",
        "_misses",
        "_size",
    )

    def __init__(
        self,
        *,
        size: int,
        issuer: str,
        audience: str | None,
        allowed_roles: Collection[str],
        anon_role: str,
    ) -> None:
        self._entries: dict[str, tuple[float, str, dict[str, Any]]] = {}
        self._size = size
        self._issuer = issuer
        self._audience = audience
        # The settings of this process: a role taken off the list takes a restart, and the
        # restart empties the cache, so a cached token never outlives its role.
        self._allowed_roles = frozenset(allowed_roles)
        self._anon_role = anon_role
        # gateway_token_cache_lookups_total: the children, looked up once.
        lookups = metrics().token_cache
        self._hits = lookups.labels("hit")
        self._misses = lookups.labels("miss")

    def verify(self, ring: KeyRing, token: str) -> dict[str, Any]:
        """Claims of a valid token; raises ``InvalidToken`` otherwise (never caches a failure)."""
        entry = self._entries.get(token)
        if entry is not None:
            expires, kid, claims = entry
            if time.time() < expires and kid in ring.kids:
                self._hits.inc()
                return claims
            del self._entries[token]
        self._misses.inc()
        claims = verify_bearer_token(
            ring,
            token,
            issuer=self._issuer,
            audience=self._audience,
            allowed_roles=self._allowed_roles,
            anon_role=self._anon_role,
        )
        if self._size:
            if len(self._entries) >= self._size:
                del self._entries[next(iter(self._entries))]
            kid = token_kid(token)
            self._entries[token] = (float(claims["exp"]) + LEEWAY_SECONDS, kid, claims)
        return claims

    def __len__(self) -> int:
        return len(self._entries)


def token_kid(token: str) -> str:
    import jwt

    kid = jwt.get_unverified_header(token).get("kid")
    return str(kid)
