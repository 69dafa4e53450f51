"""Signing keys and access tokens: the keystore, its rotation, the JWKS, signing and verifying."""

from __future__ import annotations

from gateway.tokens.algorithms import SUPPORTED_ALGORITHMS, SigningAlgorithm
from gateway.tokens.errors import (
    InvalidToken,
    KeyPassphraseError,
    KeystoreBusy,
    KeystoreCorrupt,
    KeystoreError,
    KeystoreMissing,
    KeystoreUnreadable,
    KeystoreUnwritable,
    RotationRefused,
)
from gateway.tokens.jwks import JWKSDocument, render_jwks
from gateway.tokens.keystore import (
    Keystore,
    StoredKey,
    ensure_keystore,
    export_jwks,
    load_keystore,
    prune_keys,
    read_manifest,
    rotate_keys,
)
from gateway.tokens.manifest import KeyRecord, KeyState, Manifest
from gateway.tokens.signing import KeyRing, load_keyring, sign_access_token, verify_access_token
from gateway.tokens.thumbprint import jwk_thumbprint
from gateway.tokens.watcher import KeyRingHolder

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "InvalidToken",
    "JWKSDocument",
    "KeyPassphraseError",
    "KeyRecord",
    "KeyRing",
    "KeyRingHolder",
    "KeyState",
    "Keystore",
    "KeystoreBusy",
    "KeystoreCorrupt",
    "KeystoreError",
    "KeystoreMissing",
    "KeystoreUnreadable",
    "KeystoreUnwritable",
    "Manifest",
    "RotationRefused",
    "SigningAlgorithm",
    "StoredKey",
    "ensure_keystore",
    "export_jwks",
    "jwk_thumbprint",
    "load_keyring",
    "load_keystore",
    "prune_keys",
    "read_manifest",
    "render_jwks",
    "rotate_keys",
    "sign_access_token",
    "verify_access_token",
]
