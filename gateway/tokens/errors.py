"""The failures of the keystore and of token verification, each a typed :class:`GatewayError`."""

from __future__ import annotations

import errno
from pathlib import Path

from gateway.errors import GatewayError


class KeystoreError(GatewayError):
    """The keystore cannot be read or written; the message says what the operator should do."""

    code = "keystore_error"
    status = 503


class KeystoreMissing(KeystoreError):
    code = "keystore_missing"
    status = 503


class KeystoreCorrupt(KeystoreError):
    code = "keystore_corrupt"
    status = 503


class KeystoreUnreadable(KeystoreError):
    code = "keystore_unreadable"
    status = 503


class KeystoreUnwritable(KeystoreError):
    code = "keystore_unwritable"
    status = 503


class KeystoreBusy(KeystoreError):
    code = "keystore_busy"
    status = 503


class KeyPassphraseError(KeystoreError):
    """An encrypted private key was found and GATEWAY_KEYS_PASSPHRASE is missing or wrong."""

    code = "key_passphrase_invalid"
    status = 503


class RotationRefused(GatewayError):
    """A rotation would start signing with a key that verifiers may not have fetched yet."""

    code = "rotation_refused"
    status = 409


class InvalidToken(GatewayError):
    """A bearer token failed verification.

    The message is deliberately generic and never repeats a claim of the token: until the signature
    is checked, every byte of it is attacker-controlled (RFC 8725 section 2.3).
    """

    code = "invalid_token"
    status = 401


# What an operator can do about each errno a keystore write or read may meet.
_ADVICE = {
    errno.EACCES: "permission denied: check the owner and mode of the keys directory",
    errno.EPERM: "operation not permitted: check the owner and mode of the keys directory",
    errno.EROFS: "the file system is read-only: point GATEWAY_KEYS_DIR at a writable directory",
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is exhausted: free some space",
    errno.EFBIG: "the file size limit was reached: free some space or raise the limit",
    errno.ENOTDIR: "a parent of the path is not a directory: check GATEWAY_KEYS_DIR",
    errno.EISDIR: "a directory stands where a file should be: remove it",
}


def describe_os_error(exc: OSError, path: Path) -> str:
    """One sentence naming the path and what to do about ``exc``."""
    advice = _ADVICE.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return f"{path}: {advice}"
