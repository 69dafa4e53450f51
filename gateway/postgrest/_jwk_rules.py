"""What a JWKS handed to PostgREST may hold: one allow-list, checked in Python and in SQL.

PostgREST 12 reads ``jwt-secret`` as a JWK Set, else as one JWK, else as an HMAC secret. So a
document it cannot parse as a set (one key it does not understand) is not refused: its text
becomes an HS256 secret, and since the JWKS is public anyone can then forge tokens. And a
document with members beside ``"keys"`` may be read as a single JWK (``"kty": "oct"``). Hence
the rules below: only ``"keys"`` at the top; every key one of a few exact profiles, with no
member outside its profile. ``auth.publish_jwks`` receives :data:`RULES` as a JSON literal
(bootstrap renders it into the function), and :func:`jwks_problem` applies the same rules, plus
a parse of every key by PyJWT (which checks an EC point lies on its curve), before any call.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any, Final

import jwt
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

#: Members every key may carry; ``crv`` and the key material come from its profile.
COMMON_MEMBERS: Final = ("kty", "kid", "alg", "use", "key_ops")
#: Members of private or symmetric keys: never published, named as such when they appear.
PRIVATE_MEMBERS: Final = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
MAX_KID_LENGTH: Final = 128
MAX_KEYS: Final = 32

#: ``kty`` (and ``/crv``) -> the one ``alg`` and each base64url member's size in bytes.
PROFILES: Final[dict[str, dict[str, Any]]] = {
    "RSA": {"alg": "RS256", "sizes": {"n": [256, 1024], "e": [1, 8]}},
    "EC/P-256": {"alg": "ES256", "sizes": {"x": [32, 32], "y": [32, 32]}},
    "EC/P-384": {"alg": "ES384", "sizes": {"x": [48, 48], "y": [48, 48]}},
    "EC/P-521": {"alg": "ES512", "sizes": {"x": [66, 66], "y": [66, 66]}},
    "OKP/Ed25519": {"alg": "EdDSA", "sizes": {"x": [32, 32]}},
}
RULES: Final = {
    "common": list(COMMON_MEMBERS),
    "max_kid": MAX_KID_LENGTH,
    "max_keys": MAX_KEYS,
    "profiles": PROFILES,
}
_BASE64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_PARSERS: Final[dict[str, Callable[[str], object]]] = {
    "RSA": RSAAlgorithm.from_jwk,
    "EC": ECAlgorithm.from_jwk,
    "OKP": OKPAlgorithm.from_jwk,
}


def rules_sql_literal() -> str:
    """:data:`RULES` as a SQL ``jsonb`` literal (quoted, so nothing in it can end the string)."""
    text = json.dumps(RULES, sort_keys=True, separators=(",", ":"))
    return "'" + text.replace("'", "''") + "'::jsonb"


def jwks_problem(document: bytes) -> str | None:
    """Why ``document`` may not be handed to PostgREST, or None when it may."""
    try:
        jwks = json.loads(document)
    except ValueError:
        return "the JWKS is not JSON"
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        return 'the JWKS must be an object whose "keys" is a non-empty array'
    if set(jwks) != {"keys"}:
        return 'the JWKS may hold no member but "keys"'
    if len(jwks["keys"]) > MAX_KEYS:
        return f"the JWKS holds more than {MAX_KEYS} keys"
    for jwk in jwks["keys"]:
        problem = key_problem(jwk)
        if problem is not None:
            label = jwk.get("kid") if isinstance(jwk, dict) else None
            return f"key {label if isinstance(label, str) else '(no kid)'} of the JWKS {problem}"
    return None


def key_problem(jwk: object) -> str | None:
    """Why one JWK is not a public key of an allowed profile, or None."""
    if not isinstance(jwk, dict):
        return "is not a JSON object"
    if set(jwk) & set(PRIVATE_MEMBERS):
        return "holds a private member: only public keys may be published"
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if not isinstance(kty, str) or ("crv" in jwk and not isinstance(crv, str)):
        profile = None
    else:
        profile = PROFILES.get(f"{kty}/{crv}" if "crv" in jwk else kty)
    if profile is None:
        return f"is not one of the public key types {', '.join(PROFILES)}"
    allowed = {*COMMON_MEMBERS, *profile["sizes"], *(("crv",) if "crv" in jwk else ())}
    if not set(jwk) <= allowed:
        return f"holds a member outside {', '.join(sorted(allowed))}"
    if "alg" in jwk and jwk["alg"] != profile["alg"]:
        return f"has alg {jwk['alg']!r} where its type allows only {profile['alg']}"
    if "use" in jwk and jwk["use"] != "sig":
        return 'has a "use" other than "sig"'
    if "key_ops" in jwk and jwk["key_ops"] != ["verify"]:
        return 'has "key_ops" other than ["verify"]'
    kid = jwk.get("kid", "")
    if not isinstance(kid, str) or ("kid" in jwk and not 0 < len(kid) <= MAX_KID_LENGTH):
        return f"has a kid that is not a string of 1 to {MAX_KID_LENGTH} characters"
    for member, (low, high) in profile["sizes"].items():
        size = _base64url_size(jwk.get(member))
        if size is None or not low <= size <= high:
            return f"has a {member} that is not canonical base64url of {low}-{high} bytes"
    try:
        _PARSERS[str(kty)](json.dumps(jwk))
    except (jwt.InvalidKeyError, ValueError, TypeError):
        return "is not a valid public key (its numbers do not make one)"
    return None


def _base64url_size(value: object) -> int | None:
    """The byte length of canonical unpadded base64url text, or None for anything else."""
    if not isinstance(value, str) or not _BASE64URL.match(value) or len(value) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != value:
        return None
    return len(raw)
