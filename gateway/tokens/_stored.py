"""A loaded keystore and its keys: each manifest entry with its private key and public JWK."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.tokens.algorithms import (
    PrivateKey,
    SigningAlgorithm,
    generate_private_key,
    public_jwk_members,
)
from gateway.tokens.jwks import JWKSDocument, jwks_document, public_jwk
from gateway.tokens.manifest import KeyRecord, Manifest
from gateway.tokens.thumbprint import jwk_thumbprint


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key of the keystore: its manifest entry, its private key and its public JWK."""

    record: KeyRecord
    private_key: PrivateKey
    public_jwk: dict[str, str]

    @property
    def kid(self) -> str:
        return self.record.kid

    @property
    def alg(self) -> SigningAlgorithm:
        return self.record.alg

    @classmethod
    def generate(cls, alg: SigningAlgorithm, *, now: datetime) -> StoredKey:
        """A fresh ``next`` key whose kid is the RFC 7638 thumbprint of its public key."""
        private_key = generate_private_key(alg)
        record = KeyRecord(kid=_thumbprint(private_key), alg=alg, state="next", created_at=now)
        return cls.of(record, private_key)

    @classmethod
    def of(cls, record: KeyRecord, private_key: PrivateKey) -> StoredKey:
        jwk = public_jwk(kid=record.kid, alg=record.alg, key=private_key.public_key())
        return cls(record=record, private_key=private_key, public_jwk=jwk)


@dataclass(frozen=True, slots=True)
class Keystore:
    """A loaded keystore: the manifest and its keys, in manifest order (current, next, retiring).

    ``directory`` is the keys directory it was read from; None for the database keystore.
    """

    directory: Path | None
    manifest: Manifest
    keys: tuple[StoredKey, ...]

    @property
    def current(self) -> StoredKey:
        return next(key for key in self.keys if key.record.state == "current")

    def jwks(self) -> JWKSDocument:
        """The public JWK Set: the current, next and retiring keys (RFC 7517 section 5)."""
        return jwks_document(key.public_jwk for key in self.keys)


def _thumbprint(private_key: PrivateKey) -> str:
    return jwk_thumbprint(public_jwk_members(private_key.public_key()))
