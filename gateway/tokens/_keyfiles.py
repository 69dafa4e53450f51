"""Private key files: PKCS#8 PEM, encrypted when GATEWAY_KEYS_PASSPHRASE is set."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pydantic import SecretStr

from gateway.tokens.algorithms import PrivateKey
from gateway.tokens.errors import KeyPassphraseError, KeystoreCorrupt

_ENCRYPTED_LABEL: Final = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
_PLAIN_LABEL: Final = b"-----BEGIN PRIVATE KEY-----"


def encode_private_key(key: PrivateKey, passphrase: SecretStr | None) -> bytes:
    """``key`` as PKCS#8 PEM, encrypted with the best scheme cryptography offers when a
    passphrase is set."""
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if passphrase is not None:
        encryption = serialization.BestAvailableEncryption(
            passphrase.get_secret_value().encode("utf-8")
        )
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=encryption,
    )


def decode_private_key(data: bytes, passphrase: SecretStr | None, *, path: Path) -> PrivateKey:
    """Parse a key file written by :func:`encode_private_key`.

    A plain key is read even when a passphrase is set: setting GATEWAY_KEYS_PASSPHRASE on an
    existing keystore encrypts the keys created from then on, and the older ones stay readable
    until they are rotated out and pruned.

    Raises:
        KeyPassphraseError: the key is encrypted and the passphrase is missing or wrong.
        KeystoreCorrupt: the file is not a private key the gateway can use.
    """
    stripped = data.lstrip()
    if stripped.startswith(_ENCRYPTED_LABEL):
        if passphrase is None:
            raise KeyPassphraseError(
                f"{path} is encrypted: set GATEWAY_KEYS_PASSPHRASE to the passphrase it was "
                "written with"
            )
        password: bytes | None = passphrase.get_secret_value().encode("utf-8")
    elif stripped.startswith(_PLAIN_LABEL):
        password = None
    else:
        raise KeystoreCorrupt(f"{path} is not a PKCS#8 PEM private key; restore it from a backup")
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except ValueError:
        if password is not None:
            raise KeyPassphraseError(
                f"{path} could not be decrypted: GATEWAY_KEYS_PASSPHRASE is not the passphrase "
                "it was written with"
            ) from None
        raise KeystoreCorrupt(f"{path} is damaged; restore it from a backup") from None
    except (TypeError, UnsupportedAlgorithm):
        # UnsupportedAlgorithm: a key type cryptography parses but cannot load (unknown curve).
        raise KeystoreCorrupt(f"{path} is damaged; restore it from a backup") from None
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    ):
        raise KeystoreCorrupt(f"{path} holds a {type(key).__name__}, which the gateway cannot use")
    return key
