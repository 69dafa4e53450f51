"""The access token's claims, in the fixed shape PostgREST and SQL policies expect."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from gateway.errors import GatewayError
from gateway.settings import Settings
from gateway.store import ID_MAX
from gateway.tokens.signing import ACCESS_TOKEN_TYPE


class RoleNotAllowed(GatewayError):
    code = "role_not_allowed"
    status = 403


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a token speaks for: the user and, when they have one, the organization they act in."""

    user_id: int
    email: str
    status: str
    db_role: str
    organization_id: int | None = None
    org_name: str | None = None
    org_role: str | None = None


def build_access_claims(
    identity: Identity, *, settings: Settings, session_id: str, now: int, not_after: int
) -> dict[str, Any]:
    """Claims of an access token issued at ``now`` (Unix seconds) for a session that ends at
    ``not_after``.

    ``exp`` is ``now`` plus the access token lifetime, but never later than the session's end:
    the revocation feed forgets a revoked session once its expiry has passed, and a token that
    outlived its session would then work again (gateway/revocation/feed.py).

    ``role`` is what PostgREST runs ``SET ROLE`` to, so it only ever comes from the allow-list
    (``GATEWAY_ALLOWED_ROLES``): a user whose stored role has since been taken off the list gets
    no token at all rather than some other role.
    """
    if identity.db_role not in settings.allowed_roles:
        raise RoleNotAllowed(
            "This account's database role is not in GATEWAY_ALLOWED_ROLES; an operator must "
            "fix the account or the setting."
        )
    _check_id(identity.user_id)
    in_organization = identity.organization_id is not None
    if in_organization:
        _check_id(identity.organization_id)
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "sub": str(identity.user_id),
        "iat": now,
        "exp": min(now + settings.access_token_ttl, not_after),
        "jti": secrets.token_urlsafe(16),
        "sid": session_id,
        "role": identity.db_role,
        "token_type": ACCESS_TOKEN_TYPE,
        "user": {
            "role": identity.org_role if in_organization else None,
            "email": identity.email,
            "status": identity.status,
            "user_id": identity.user_id,
            "organization_id": identity.organization_id,
        },
        "organization": (
            {"org_name": identity.org_name, "organization_id": identity.organization_id}
            if in_organization
            else None
        ),
    }
    if settings.audience:
        claims["aud"] = settings.audience
    return claims


def _check_id(value: int | None) -> None:
    # JSON numbers above 2**53 lose precision in JavaScript and in jsonb comparisons.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= ID_MAX:
        raise ValueError(f"id {value!r} is not a positive integer below 2**53")
