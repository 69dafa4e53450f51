"""Key ids are RFC 7638 JWK thumbprints."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.tokens.algorithms import public_jwk_members
from gateway.tokens.thumbprint import jwk_thumbprint

# RFC 7638 section 3.1: the example RSA key and its SHA-256 thumbprint.
RFC_7638_KEY = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
        "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC_7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_thumbprint_of_the_rfc_7638_example_key_is_the_published_one() -> None:
    assert jwk_thumbprint(RFC_7638_KEY) == RFC_7638_THUMBPRINT


def test_thumbprint_ignores_optional_members() -> None:
    bare = {name: RFC_7638_KEY[name] for name in ("kty", "n", "e")}

    assert jwk_thumbprint(bare) == jwk_thumbprint({**RFC_7638_KEY, "use": "sig"})


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        ed25519.Ed25519PrivateKey.generate().public_key(),
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
    ],
    ids=["EC", "OKP", "RSA"],
)
def test_thumbprint_of_every_key_type_is_43_base64url_characters(
    key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey,
) -> None:
    thumbprint = jwk_thumbprint(public_jwk_members(key))

    assert len(thumbprint) == 43
    assert set(thumbprint) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


def test_thumbprint_refuses_an_unknown_key_type() -> None:
    with pytest.raises(ValueError, match="type"):
        jwk_thumbprint({"kty": "XYZ", "x": "AQAB"})


def test_thumbprint_refuses_a_key_missing_a_required_member() -> None:
    with pytest.raises(ValueError, match="lacks y"):
        jwk_thumbprint({"kty": "EC", "crv": "P-256", "x": "AQAB"})
