"""Reading the keystore from disk: the manifest, then each key file it names, checked by kid."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final

from pydantic import SecretStr

from gateway.tokens._keyfiles import decode_private_key
from gateway.tokens._layout import JWKS_NAME, MANIFEST_NAME
from gateway.tokens._stored import Keystore, StoredKey
from gateway.tokens.algorithms import check_private_key
from gateway.tokens.errors import (
    KeystoreCorrupt,
    KeystoreMissing,
    KeystoreUnreadable,
    describe_os_error,
)
from gateway.tokens.manifest import KeyRecord, Manifest
from gateway.tokens.thumbprint import jwk_thumbprint

# The public module's name: the keystore's records keep the logger they were always sent to.
logger = logging.getLogger("gateway.tokens.keystore")

MAX_FILE_BYTES: Final = 1 << 20


def load(directory: Path, passphrase: SecretStr | None) -> Keystore:
    manifest = read_manifest(directory)
    keys = tuple(_read_key(directory, record, passphrase) for record in manifest.keys)
    return Keystore(directory=directory, manifest=manifest, keys=keys)


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST_NAME
    try:
        data = _read_small(path)
    except FileNotFoundError:
        raise KeystoreMissing(
            f"no keystore in {directory} ({MANIFEST_NAME} is missing): run `gateway keys init`, "
            "or start `gateway serve`, which creates one"
        ) from None
    except OSError as exc:
        raise KeystoreUnreadable(describe_os_error(exc, path)) from None
    try:
        return Manifest.parse(data)
    except ValueError as exc:
        raise KeystoreCorrupt(f"{path} is invalid: {exc}; restore it from a backup") from None


def jwks_on_disk(directory: Path) -> bytes | None:
    try:
        return (directory / JWKS_NAME).read_bytes()
    except OSError:
        return None


def _read_key(directory: Path, record: KeyRecord, passphrase: SecretStr | None) -> StoredKey:
    # The kid was checked against KID_PATTERN when the manifest was parsed: it cannot name a
    # file outside the directory.
    path = directory / f"{record.kid}.pem"
    try:
        data = _read_small(path)
    except FileNotFoundError:
        raise KeystoreCorrupt(
            f"{MANIFEST_NAME} names the key {record.kid} but {path} is missing; "
            "restore it from a backup"
        ) from None
    except OSError as exc:
        raise KeystoreUnreadable(describe_os_error(exc, path)) from None
    try:
        private_key = check_private_key(record.alg, decode_private_key(data, passphrase, path=path))
    except ValueError as exc:
        raise KeystoreCorrupt(f"{path}: {exc}") from None
    stored = StoredKey.of(record, private_key)
    if jwk_thumbprint(stored.public_jwk) != record.kid:
        raise KeystoreCorrupt(
            f"{path} does not hold the key {record.kid} (its RFC 7638 thumbprint differs); "
            "restore it from a backup"
        )
    return stored


def _read_small(path: Path) -> bytes:
    with path.open("rb") as file:
        if path.suffix == ".pem" and os.fstat(file.fileno()).st_mode & 0o077:
            logger.warning("%s is readable by other users: chmod 600 it", path)
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise KeystoreCorrupt(f"{path} is larger than {MAX_FILE_BYTES} bytes; it is not ours")
    return data
