"""The signing algorithms the gateway offers: key generation, key checks and public JWK members."""

from __future__ import annotations

from typing import Any, Final, Literal, TypeAlias, get_args

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

SigningAlgorithm: TypeAlias = Literal["ES256", "EdDSA", "RS256"]
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey

#: Every ``alg`` the gateway can sign with; all asymmetric, so that PostgREST and other verifiers
#: only ever hold public keys (RFC 8725 section 3.5 warns against shared HMAC secrets).
SUPPORTED_ALGORITHMS: Final[tuple[SigningAlgorithm, ...]] = get_args(SigningAlgorithm)

#: RFC 7518 section 3.3: a key of size 2048 bits or larger MUST be used with RS256.
MIN_RSA_BITS: Final = 2048
#: New RSA keys get 3072 bits: the 128-bit security level of P-256 and Ed25519 (NIST SP 800-57).
NEW_RSA_BITS: Final = 3072


def is_supported(alg: object) -> bool:
    return alg in SUPPORTED_ALGORITHMS


def generate_private_key(alg: SigningAlgorithm) -> PrivateKey:
    """A fresh private key for ``alg``."""
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=NEW_RSA_BITS)


def check_private_key(alg: SigningAlgorithm, key: object) -> PrivateKey:
    """Return ``key`` when it is a key ``alg`` may sign with, else raise ``ValueError``.

    RFC 7518 binds each ``alg`` to one key type (and ES256 to one curve, section 3.4); a key of
    another type under a given ``alg`` is a sign of a tampered or mixed-up keystore.
    """
    if alg == "ES256":
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
            return key
        raise ValueError("ES256 needs a P-256 elliptic-curve key")
    if alg == "EdDSA":
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key
        raise ValueError("EdDSA needs an Ed25519 key")
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(
                f"RS256 needs an RSA key of at least {MIN_RSA_BITS} bits, "
                f"this one has {key.key_size}"
            )
        return key
    raise ValueError("RS256 needs an RSA key")


# The members RFC 7518 section 6 (EC, RSA) and RFC 8037 section 2 (OKP) define for a *public*
# key. A JWK is built from this allow-list, so that no private member (d, p, q, dp, dq, qi) or
# stray library extra (key_ops) can ever reach a published JWKS.
_PUBLIC_MEMBERS: Final = {
    "EC": ("kty", "crv", "x", "y"),
    "OKP": ("kty", "crv", "x"),
    "RSA": ("kty", "n", "e"),
}


def public_jwk_members(key: PublicKey) -> dict[str, str]:
    """The public members of ``key`` as a JWK (RFC 7517), without ``kid``, ``alg`` or ``use``."""
    jwk: dict[str, Any]
    if isinstance(key, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(key, as_dict=True)
    elif isinstance(key, ed25519.Ed25519PublicKey):
        jwk = OKPAlgorithm.to_jwk(key, as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    return {name: str(jwk[name]) for name in _PUBLIC_MEMBERS[str(jwk["kty"])]}
