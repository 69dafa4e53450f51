"""Private keys encrypted at rest in the store: a key-encryption key and AES-256-GCM seals.

The key-encryption key (KEK) is derived from GATEWAY_KEYS_PASSPHRASE with scrypt and the
keystore's own random salt; HKDF-SHA256 makes two keys of it, one to seal and one to MAC.
Each private key (PKCS#8 DER) is sealed under the first with a fresh 96-bit nonce and the
keystore's salt, its kid and its alg as associated data, so a sealed key copied into another
row or another keystore does not open. A seal of nothing under a fixed label (the "check")
tells a wrong passphrase apart from a damaged key. The second key authenticates the
manifest (every key's kid, alg, state and times, and the version): a row changed, added,
removed or put back without the passphrase is refused. Nothing here logs, and no message
holds key material.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gateway.tokens.algorithms import PrivateKey, SigningAlgorithm, check_private_key
from gateway.tokens.errors import KeyPassphraseError, KeystoreCorrupt

#: The one derivation this gateway writes and reads (about 64 MiB and 0.1-0.3 s per derivation,
#: once per process and keystore): n = 2^16, r = 8, p = 1, a 32-byte key.
KDF: Final = "scrypt:n=65536,r=8,p=1"
_SCRYPT_N: Final = 1 << 16
SALT_BYTES: Final = 16
_NONCE_BYTES: Final = 12
_CHECK_LABEL: Final = b"gateway keystore passphrase check v1"
_KEY_LABEL: Final = b"gateway signing key v1"
_SEAL_INFO: Final = b"gateway keystore seal v1"
_MAC_INFO: Final = b"gateway keystore manifest mac v1"


class Kek:
    """A derived key-encryption key (its sealing and MAC keys); its repr never shows them."""

    __slots__ = ("_aead", "_mac_key", "salt")

    def __init__(self, key: bytes, salt: bytes) -> None:
        self._aead = AESGCM(_expand(key, _SEAL_INFO))
        self._mac_key = _expand(key, _MAC_INFO)
        self.salt = salt  # the keystore's id: bound into every seal

    def __repr__(self) -> str:
        return "Kek(...)"

    def mac(self, message: bytes) -> bytes:
        """HMAC-SHA256 of ``message`` under the MAC key (never the sealing key)."""
        return hmac.new(self._mac_key, message, hashlib.sha256).digest()

    def verify_mac(self, message: bytes, tag: bytes | None) -> bool:
        """True when ``tag`` is the MAC of ``message``; a constant-time comparison."""
        return tag is not None and hmac.compare_digest(self.mac(message), tag)

    def seal(self, plaintext: bytes, associated: bytes) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, associated)

    def open(self, sealed: bytes, associated: bytes) -> bytes:
        """Raises InvalidTag when ``sealed`` was not made under this key and ``associated``."""
        if len(sealed) <= _NONCE_BYTES:
            raise InvalidTag
        return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], associated)


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def derive_kek(passphrase: str, salt: bytes, kdf: str = KDF) -> Kek:
    """The KEK of ``passphrase`` and ``salt`` (CPU and memory bound: run it off the loop).

    Raises:
        KeystoreCorrupt: ``kdf`` is not the derivation this gateway writes.
    """
    if kdf != KDF:
        raise KeystoreCorrupt(
            f"the store's keystore uses the key derivation {kdf!r}, which this gateway does not "
            "know; upgrade the gateway"
        )
    scrypt = Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=8, p=1)
    return Kek(scrypt.derive(passphrase.encode("utf-8")), salt)


def _expand(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def make_check(kek: Kek) -> bytes:
    return kek.seal(b"", _CHECK_LABEL)


def verify_check(kek: Kek, check: bytes) -> None:
    """Raises KeyPassphraseError when ``kek`` was not derived from the keystore's passphrase."""
    try:
        kek.open(check, _CHECK_LABEL)
    except InvalidTag:
        raise KeyPassphraseError(
            "the keys in the store were encrypted with another passphrase: set "
            "GATEWAY_KEYS_PASSPHRASE (or GATEWAY_KEYS_PASSPHRASE_FILE) to the one they were "
            "written with"
        ) from None


def associated_data(salt: bytes, kid: str, alg: SigningAlgorithm) -> bytes:
    """What binds a seal to its keystore and row: the label, the keystore's salt (hex), the
    kid and the alg, NUL-separated."""
    return b"\0".join(
        (_KEY_LABEL, salt.hex().encode("ascii"), kid.encode("ascii"), alg.encode("ascii"))
    )


def seal_private_key(kek: Kek, key: PrivateKey, *, kid: str, alg: SigningAlgorithm) -> bytes:
    der = key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return kek.seal(der, associated_data(kek.salt, kid, alg))


def open_private_key(kek: Kek, sealed: bytes, *, kid: str, alg: SigningAlgorithm) -> PrivateKey:
    """The private key sealed for ``kid`` and ``alg``.

    Raises:
        KeystoreCorrupt: the seal does not open for this kid and alg (moved or damaged), or
            does not hold a key of ``alg``. Call :func:`verify_check` first, so that a wrong
            passphrase is reported as such.
    """
    try:
        der = kek.open(sealed, associated_data(kek.salt, kid, alg))
    except InvalidTag:
        raise KeystoreCorrupt(
            f"the store's sealed private key of {kid} does not open for that kid and alg "
            "(damaged, or copied from another row); restore the keystore from a backup"
        ) from None
    try:
        loaded = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        raise KeystoreCorrupt(f"the store's private key of {kid} is damaged") from None
    try:
        return check_private_key(alg, loaded)
    except ValueError as exc:
        raise KeystoreCorrupt(f"the store's key {kid}: {exc}") from None
