"""Signing and verifying access tokens with a :class:`KeyRing` prepared once per keystore load."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Final

import jwt

from gateway.settings import Settings
from gateway.tokens.algorithms import PrivateKey, SigningAlgorithm, is_supported
from gateway.tokens.errors import InvalidToken
from gateway.tokens.jwks import JWKSDocument, render_jwks
from gateway.tokens.keystore import Keystore, load_keystore
from gateway.tokens.manifest import KID_PATTERN

#: Tokens longer than this are refused before any parsing: ours are well under 2 KiB, and a
#: verifier should bound the work an unauthenticated request can cause (RFC 8725 section 3.1).
MAX_TOKEN_LENGTH: Final = 8 * 1024

#: Seconds of clock skew allowed on ``exp`` and ``iat``: PostgREST allows the same 30 s, so a
#: token the gateway accepts is one PostgREST accepts too.
LEEWAY_SECONDS: Final = 30

_REQUIRED_CLAIMS: Final = ["exp", "iat", "iss"]

#: The one ``token_type`` a user's access token carries (the claims builder writes it). Other
#: JWS signed by the same key, such as ``gateway doctor``'s probe, carry another one.
ACCESS_TOKEN_TYPE: Final = "access_token"  # noqa: S105 - a claim value, not a secret


class _VerificationKey:
    """A public key with the one algorithm it may verify (RFC 8725 section 3.1)."""

    __slots__ = ("alg", "jwk")

    def __init__(self, alg: SigningAlgorithm, jwk: jwt.PyJWK) -> None:
        self.alg = alg
        self.jwk = jwk


class KeyRing:
    """An immutable snapshot of a loaded keystore, ready for the hot path.

    Holds the current private key and every published public key by kid, parsed once: signing
    and verifying read no file and parse no key. A rotation produces a new ring (see
    :class:`gateway.tokens.watcher.KeyRingHolder`); a ring itself never changes.

    Attributes:
        current_kid: the kid of the signing key.
        current_alg: the algorithm of the signing key.
        kids: every kid a token may name: the current, next and retiring keys.
        algorithms: the algorithms of those keys, sorted (for ``openid-configuration``).
        jwks: the public JWK Set document.
        jwks_json: ``jwks`` rendered once, to serve at ``/.well-known/jwks.json``.
    """

    __slots__ = (
        "_signing_key",
        "_verification_keys",
        "algorithms",
        "current_alg",
        "current_kid",
        "jwks",
        "jwks_json",
        "kids",
    )

    _signing_key: PrivateKey
    _verification_keys: Mapping[str, _VerificationKey]
    algorithms: tuple[SigningAlgorithm, ...]
    current_alg: SigningAlgorithm
    current_kid: str
    jwks: JWKSDocument
    jwks_json: bytes
    kids: frozenset[str]

    def __init__(self, keystore: Keystore) -> None:
        current = keystore.current
        self._signing_key = current.private_key
        self.current_kid = current.kid
        self.current_alg = current.alg
        self._verification_keys = {
            key.kid: _VerificationKey(key.alg, jwt.PyJWK(key.public_jwk, algorithm=key.alg))
            for key in keystore.keys
        }
        self.kids = frozenset(self._verification_keys)
        self.algorithms = tuple(sorted({key.alg for key in keystore.keys}))
        self.jwks = keystore.jwks()
        self.jwks_json = render_jwks(self.jwks)

    def __setattr__(self, name: str, value: object) -> None:
        if hasattr(self, name):
            raise AttributeError(f"KeyRing is immutable: {name} cannot be changed")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return f"KeyRing(current_kid={self.current_kid!r}, kids={sorted(self.kids)!r})"


def load_keyring(settings: Settings) -> KeyRing:
    """Load the keystore and prepare a ring from it.

    Raises:
        KeystoreError: the keystore cannot be loaded.
    """
    return KeyRing(load_keystore(settings))


def sign_access_token(ring: KeyRing, claims: Mapping[str, Any]) -> str:
    """Sign ``claims`` with the current key: header ``alg``, ``kid`` and ``typ: "JWT"``.

    Raises:
        ValueError: ``exp`` or ``iat`` is missing; the gateway never issues a token that lives
            forever, nor one that verifiers would refuse.
    """
    missing = [name for name in ("exp", "iat") if name not in claims]
    if missing:
        raise ValueError(f"an access token needs {' and '.join(missing)}")
    return jwt.encode(
        dict(claims),
        ring._signing_key,
        algorithm=ring.current_alg,
        headers={"kid": ring.current_kid, "typ": "JWT"},
    )


def verify_access_token(
    ring: KeyRing,
    token: str,
    *,
    issuer: str,
    allowed_roles: Collection[str],
    audience: str | None = None,
) -> dict[str, Any]:
    """Verify ``token`` and return its claims.

    The checks, in order: length; a ``kid`` naming a key of the ring (an unknown kid does not
    reload the keystore, so forged kids cannot make the gateway do I/O); ``alg`` exactly the
    key's own algorithm, which rules out ``none``, every ``HS*`` and algorithm substitution
    (RFC 8725 sections 2.1 and 3.1); signature; ``exp`` and ``iat`` present and valid within
    :data:`LEEWAY_SECONDS`; ``iss`` equal to ``issuer``.

    Audience (RFC 7519 section 4.1.3): with ``audience`` set, ``aud`` must be present and name
    it. Without one, a token that carries ``aud`` is refused: the gateway only issues ``aud``
    when an audience is configured, so such a token was meant for someone else.

    Then the claims that make it a user's access token, each from an allow-list: ``token_type``
    exactly ``"access_token"``; ``sub`` and ``sid`` non-empty strings (the revocation feed and
    the store look the user and the session up by them); ``role`` one of ``allowed_roles``, the
    current ``GATEWAY_ALLOWED_ROLES``, so a role taken off the list stops working at once,
    even in tokens issued before (PostgREST would ``SET ROLE`` to whatever the claim says).

    Raises:
        InvalidToken: for any failure; the message never repeats a claim or header of the token.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("The token is too long.")
    key = header_key(ring, token)
    claims = verified_claims(token, key, issuer=issuer, audience=audience)
    check_access_token_claims(claims, allowed_roles=allowed_roles)
    return claims


class UnknownSigningKey(InvalidToken):
    """A well-formed header naming a kid that is not in the ring: maybe a pruned key of ours.

    Raised only when everything else in the header is what the gateway writes: ``kid`` a string
    shaped like the gateway's kids, ``alg`` one the gateway signs with, ``typ`` ``JWT``. Any other
    header fault is a plain :class:`InvalidToken`.
    """


def header_key(ring: KeyRing, token: str) -> _VerificationKey:
    """The key the header names, once ``kid``, ``alg`` and ``typ`` pass; no signature yet.

    Raises:
        UnknownSigningKey: the header is one the gateway could have written, under a kid that is
            not in the ring (pruned, or another keystore's).
        InvalidToken: any other fault of the header.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken("The token is malformed.") from None
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise InvalidToken("The token names no signing key.")
    typ = header.get("typ")
    # RFC 8725 section 3.11: explicit typing keeps other kinds of JWS signed by the same key
    # from passing as access tokens. RFC 7515 section 4.1.9: media types compare case-blind.
    if typ is not None and (not isinstance(typ, str) or typ.lower() != "jwt"):
        raise InvalidToken("The token is not a JWT.")
    key = ring._verification_keys.get(kid)
    if key is None:
        if typ is not None and is_supported(header.get("alg")) and KID_PATTERN.match(kid):
            raise UnknownSigningKey("The token was not signed by a key of this gateway.")
        raise InvalidToken("The token was not signed by a key of this gateway.")
    if header.get("alg") != key.alg:
        raise InvalidToken("The token's algorithm is not the one of its key.")
    return key


def verified_claims(
    token: str, key: _VerificationKey, *, issuer: str, audience: str | None
) -> dict[str, Any]:
    """The claims, once the signature, ``exp``, ``iat``, ``iss`` and ``aud`` hold."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.jwk,
            algorithms=[key.alg],
            issuer=issuer,
            audience=audience,
            leeway=LEEWAY_SECONDS,
            options={"require": _REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("The token has expired.") from None
    except jwt.MissingRequiredClaimError:
        raise InvalidToken("The token lacks a required claim.") from None
    except jwt.InvalidIssuerError:
        raise InvalidToken("The token was issued by someone else.") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("The token is meant for another audience.") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("The token's signature is invalid.") from None
    except jwt.PyJWTError:
        raise InvalidToken("The token is invalid.") from None
    return claims


def check_access_token_claims(claims: Mapping[str, Any], *, allowed_roles: Collection[str]) -> None:
    """Refuse claims that do not make a user's access token: each one from an allow-list."""
    if claims.get("token_type") != ACCESS_TOKEN_TYPE:
        raise InvalidToken("The token is not an access token.")
    if not _non_empty_string(claims.get("sub")) or not _non_empty_string(claims.get("sid")):
        raise InvalidToken("The token names no user or no session.")
    role = claims.get("role")
    if not isinstance(role, str) or role not in allowed_roles:
        raise InvalidToken("The token's role is not one this gateway grants.")


def _non_empty_string(value: object) -> bool:
    return isinstance(value, str) and value != ""
