"""Public JWKs and the JWK Set document (RFC 7517) that PostgREST and clients verify with."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TypeAlias

from gateway.tokens.algorithms import PublicKey, SigningAlgorithm, public_jwk_members

JWKSDocument: TypeAlias = dict[str, list[dict[str, str]]]


def public_jwk(*, kid: str, alg: SigningAlgorithm, key: PublicKey) -> dict[str, str]:
    """The JWK of a public key, with the members verifiers select keys by.

    ``alg`` is always set: RFC 8725 section 3.1 asks verifiers to use exactly the algorithm a
    key is meant for, and a JWK that names it lets PostgREST and other libraries do so.
    """
    return {**public_jwk_members(key), "kid": kid, "alg": alg, "use": "sig"}


def jwks_document(jwks: Iterable[Mapping[str, str]]) -> JWKSDocument:
    """``{"keys": [...]}`` holding ``jwks`` in the given order."""
    return {"keys": [dict(jwk) for jwk in jwks]}


def render_jwks(document: JWKSDocument) -> bytes:
    """The bytes of ``jwks.json``: stable, so that an unchanged keystore renders identically."""
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")
