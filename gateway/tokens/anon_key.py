"""The anon key: a long-lived JWS that stands for nobody, for clients that need a project key.

supabase-js sends its key as ``apikey`` on every request and as the bearer token until someone
signs in. The gateway signs one (``gateway keys anon-key``) so that those clients work
unchanged; it carries the anon role and no user and no session, and the PostgREST mount
forwards a request bearing it as an anonymous one (no Authorization at all). It can therefore
never grant more than sending no token does.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping
from typing import Any, Final

import jwt

from gateway.settings import Settings
from gateway.tokens.errors import InvalidToken
from gateway.tokens.signing import (
    MAX_TOKEN_LENGTH,
    KeyRing,
    UnknownSigningKey,
    check_access_token_claims,
    header_key,
    sign_access_token,
    verified_claims,
)

#: The ``token_type`` of an anon key: never ``access_token``, so /auth refuses it as a bearer.
ANON_KEY_TYPE: Final = "anon_key"

#: Ten years: the key is built into apps. What ends it in practice is the pruning of the signing
#: key that made it (docs/supabase.md, "The anon key and key rotation").
ANON_KEY_LIFETIME: Final = 10 * 365 * 24 * 3600


class AnonKeyRetired(InvalidToken):
    """An anon key whose signing key was rotated out and pruned: refused, and said so."""

    code = "anon_key_retired"


def build_anon_key_claims(settings: Settings, *, now: int) -> dict[str, Any]:
    """The anon key's claims: the anon role, no ``sub``, no ``sid``, no user, no organization."""
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "iat": now,
        "exp": now + ANON_KEY_LIFETIME,
        "jti": secrets.token_urlsafe(16),
        "role": settings.anon_role,
        "token_type": ANON_KEY_TYPE,
    }
    if settings.audience:
        claims["aud"] = settings.audience
    return claims


def sign_anon_key(ring: KeyRing, settings: Settings, *, now: int) -> str:
    """An anon key signed by the ring's current key."""
    return sign_access_token(ring, build_anon_key_claims(settings, now=now))


def is_anon_key(claims: Mapping[str, Any]) -> bool:
    """Whether verified claims are an anon key's (verify them first: see verify_bearer_token)."""
    return claims.get("token_type") == ANON_KEY_TYPE


def verify_bearer_token(
    ring: KeyRing,
    token: str,
    *,
    issuer: str,
    allowed_roles: Collection[str],
    anon_role: str,
    audience: str | None = None,
) -> dict[str, Any]:
    """Verify a bearer token that may be a user's access token or the anon key.

    The signature and the registered claims are checked once, exactly as for an access token;
    then the claims must make either a user's access token (``verify_access_token``'s rules) or
    an anon key: ``role`` exactly ``anon_role``, and no ``sub`` nor ``sid``, so no user token
    can ever be taken for one.

    Raises:
        AnonKeyRetired: the header is one the gateway writes (``alg`` one it signs with,
            ``typ`` ``JWT``, a ``kid`` of its shape) but the kid is not in the ring, as after a
            prune, and the unverified payload says ``token_type`` ``anon_key``. Only the choice
            of message rests on those unverified bytes: the answer is a refusal either way. The
            keystore keeps no record of pruned kids, so another keystore's kid gets it too.
        InvalidToken: any other failure.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("The token is too long.")
    try:
        key = header_key(ring, token)
    except UnknownSigningKey:
        if _claims_to_be_anon_key(token):
            raise AnonKeyRetired(
                "This anon key was signed by a key that has since been rotated out and pruned; "
                "print a new one with `gateway keys anon-key` and rebuild the app with it."
            ) from None
        raise
    claims = verified_claims(token, key, issuer=issuer, audience=audience)
    if is_anon_key(claims):
        _check_anon_key_claims(claims, anon_role=anon_role)
    else:
        check_access_token_claims(claims, allowed_roles=allowed_roles)
    return claims


def _check_anon_key_claims(claims: Mapping[str, Any], *, anon_role: str) -> None:
    if claims.get("role") != anon_role:
        raise InvalidToken("The token's role is not one this gateway grants.")
    if "sub" in claims or "sid" in claims:
        raise InvalidToken("The token is not an anon key.")


def _claims_to_be_anon_key(token: str) -> bool:
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return isinstance(payload, dict) and is_anon_key(payload)
