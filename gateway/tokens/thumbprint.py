"""RFC 7638 JWK thumbprints: the key id of every gateway key."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

# RFC 7638 section 3.2: only the required members of each key type take part, so that optional
# members (kid, alg, use) cannot change the thumbprint. OKP follows RFC 8037 section 2.
_REQUIRED_MEMBERS: Final = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
    "oct": ("k", "kty"),
}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The SHA-256 JWK thumbprint of ``jwk``, base64url-encoded without padding (RFC 7638).

    Raises:
        ValueError: the key type is unknown or a required member is missing.
    """
    kty = jwk.get("kty")
    members = _REQUIRED_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None:
        raise ValueError(f"cannot take the thumbprint of a key of type {kty!r}")
    missing = [name for name in members if not isinstance(jwk.get(name), str)]
    if missing:
        raise ValueError(f"the {kty} key lacks {', '.join(missing)}")
    # RFC 7638 section 3.3: members in lexicographic order, no whitespace, UTF-8.
    canonical = json.dumps(
        {name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
