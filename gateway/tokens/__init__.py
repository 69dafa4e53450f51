"""Signing keys and access tokens: the keystore, its rotation, the JWKS, signing and verifying."""

from __future__ import annotations

from gateway.tokens.algorithms import SUPPORTED_ALGORITHMS, SigningAlgorithm
from gateway.tokens.anon_key import (
    AnonKeyRetired,
    is_anon_key,
    sign_anon_key,
    verify_bearer_token,
)
from gateway.tokens.claims import Identity, build_access_claims
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
    JWKS_NAME,
    Keystore,
    StoredKey,
    ensure_keystore,
    export_jwks,
    in_database,
    keys_directory,
    load_keystore,
    migrate_to_database,
    prune_keys,
    read_manifest,
    rotate_keys,
)
from gateway.tokens.manifest import KeyRecord, KeyState, Manifest, format_time
from gateway.tokens.signing import (
    LEEWAY_SECONDS,
    KeyRing,
    load_keyring,
    sign_access_token,
    verify_access_token,
)
from gateway.tokens.thumbprint import jwk_thumbprint
from gateway.tokens.watcher import KeyRingHolder

__all__ = [
    "JWKS_NAME",
    "LEEWAY_SECONDS",
    "SUPPORTED_ALGORITHMS",
    "AnonKeyRetired",
    "Identity",
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
    "build_access_claims",
    "ensure_keystore",
    "export_jwks",
    "format_time",
    "in_database",
    "is_anon_key",
    "jwk_thumbprint",
    "keys_directory",
    "load_keyring",
    "load_keystore",
    "migrate_to_database",
    "prune_keys",
    "read_manifest",
    "render_jwks",
    "rotate_keys",
    "sign_access_token",
    "sign_anon_key",
    "verify_access_token",
    "verify_bearer_token",
]
