"""The keystore in ``keys_dir``: loading, creating, rotating and pruning signing keys.

Layout: ``<kid>.pem`` per private key (PKCS#8, mode 0600), ``manifest.json`` (the source of
truth) and ``jwks.json`` (the public keys PostgREST reads). A change writes the new key file
first, then the manifest (the commit point), then ``jwks.json``; a process that dies between two
of these writes leaves a keystore that loads and still verifies every token already issued.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from gateway.settings import Settings
from gateway.tokens import _lock, _reading, _writing
from gateway.tokens._layout import DIRECTORY_MODE, JWKS_NAME, MANIFEST_NAME
from gateway.tokens._stored import Keystore, StoredKey
from gateway.tokens.errors import (
    KeystoreCorrupt,
    KeystoreUnwritable,
    RotationRefused,
    describe_os_error,
)
from gateway.tokens.jwks import render_jwks
from gateway.tokens.manifest import KeyRecord, Manifest

__all__ = [
    "JWKS_NAME",
    "MANIFEST_NAME",
    "NEXT_KEY_MIN_AGE_FACTOR",
    "PRUNE_MARGIN",
    "Keystore",
    "StoredKey",
    "ensure_keystore",
    "export_jwks",
    "keys_directory",
    "load_keystore",
    "prune_keys",
    "read_manifest",
    "rotate_keys",
]

logger = logging.getLogger(__name__)

#: A token is accepted up to 30 s past its ``exp`` (PostgREST's clock-skew leeway, which
#: ``verify_access_token`` shares), so a retiring key is kept that much longer than the token
#: lifetime. The same margin covers a worker that keeps signing with the old key until its
#: watcher notices the rotation (at most a second or two).
PRUNE_MARGIN: Final = timedelta(seconds=30)

#: A next key must have been published this many JWKS max-ages before it may sign.
NEXT_KEY_MIN_AGE_FACTOR = 2


def keys_directory(settings: Settings) -> Path:
    return Path(settings.keys_dir)


def read_manifest(settings: Settings) -> Manifest:
    """The manifest alone: what ``gateway keys list`` shows, readable without the passphrase.

    Raises:
        KeystoreError: the keystore is missing, unreadable or corrupt.
    """
    return _reading.read_manifest(keys_directory(settings))


def load_keystore(settings: Settings) -> Keystore:
    """Read the keystore without changing it; the manifest decides which key files count.

    Raises:
        KeystoreError: the keystore is missing, unreadable or corrupt, or a key cannot be
            decrypted.
    """
    return _reading.load(keys_directory(settings), settings.keys_passphrase)


def ensure_keystore(settings: Settings, *, now: datetime | None = None) -> bool:
    """Create the keystore (one ``current`` and one ``next`` key) unless one exists.

    An existing keystore is never overwritten; when its ``jwks.json`` does not match the
    manifest (a change was interrupted before the JWKS write) the file is rewritten.

    Returns:
        True when a keystore was created.

    Raises:
        KeystoreError: the keystore cannot be created, read or repaired.
    """
    directory = keys_directory(settings)
    if (directory / MANIFEST_NAME).exists():
        store = _reading.load(directory, settings.keys_passphrase)
        if _reading.jwks_on_disk(directory) != render_jwks(store.jwks()):
            with _lock.exclusive(directory):
                _writing.commit(
                    _reading.load(directory, settings.keys_passphrase), passphrase=None, new_keys=()
                )
        return False
    try:
        directory.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise KeystoreUnwritable(describe_os_error(exc, directory)) from None
    with _lock.exclusive(directory):
        if (directory / MANIFEST_NAME).exists():
            return False  # another process created it while we waited for the lock
        if (directory / JWKS_NAME).exists():
            # jwks.json is written after the manifest: a keystore did exist here. Creating a new
            # one would delete its keys and break every token they signed.
            raise KeystoreCorrupt(
                f"{directory} has {JWKS_NAME} but no {MANIFEST_NAME}: restore {MANIFEST_NAME} "
                "from a backup, or move the directory away to start a new keystore"
            )
        moment = _moment(now)
        first = StoredKey.generate(settings.signing_alg, now=moment)
        current = StoredKey.of(
            replace(first.record, state="current", activated_at=moment), first.private_key
        )
        upcoming = StoredKey.generate(settings.signing_alg, now=moment)
        store = Keystore(
            directory, Manifest.new(current.record, upcoming.record), (current, upcoming)
        )
        _writing.commit(store, passphrase=settings.keys_passphrase, new_keys=store.keys)
    logger.info("created keystore in %s (current key %s)", directory, current.kid)
    return True


def rotate_keys(
    settings: Settings, *, force: bool = False, now: datetime | None = None
) -> Manifest:
    """Promote next → current and current → retiring, and create a new next key.

    The new next key uses the configured ``signing_alg``, so an operator changes algorithm by
    rotating twice.

    Args:
        settings: ``keys_dir``, ``signing_alg``, ``keys_passphrase`` and ``jwks_max_age``.
        force: rotate even when the next key is younger than twice ``jwks_max_age``.
        now: the time of the rotation (default: the clock).

    Returns:
        The new manifest.

    Raises:
        RotationRefused: the next key is younger than twice ``jwks_max_age`` seconds, so
            PostgREST and clients that cache the JWKS may not know it yet, and would refuse its
            tokens.
        KeystoreError: the keystore cannot be read or written; it is then unchanged.
    """
    directory = _existing(keys_directory(settings))
    with _lock.exclusive(directory):
        # Read the clock under the lock: a moment taken before waiting for another rotation
        # would be older than the next key that rotation creates, and refuse this one.
        moment = _moment(now)
        store = _reading.load(directory, settings.keys_passphrase)
        upcoming = store.manifest.next
        age = moment - upcoming.created_at
        # Twice the cache lifetime: a verifier that fetched the JWKS just before the next key
        # appeared still has a stale copy for up to one max-age; the second is the margin that
        # keeps the advertised max-age "well under" the wait.
        wait = timedelta(seconds=NEXT_KEY_MIN_AGE_FACTOR * settings.jwks_max_age) - age
        if not force and wait > timedelta(0):
            raise RotationRefused(
                f"the next key {upcoming.kid} was created {_seconds(age)} s ago and verifiers "
                f"may cache the JWKS for {settings.jwks_max_age} s (GATEWAY_JWKS_MAX_AGE; a next "
                f"key waits {NEXT_KEY_MIN_AGE_FACTOR}x that): "
                f"rotate again in {_seconds(wait)} s, or use --force once every verifier has "
                "reloaded the JWKS"
            )
        fresh = StoredKey.generate(settings.signing_alg, now=moment)
        manifest = store.manifest.rotated(fresh.record, now=moment)
        private_keys = {key.kid: key.private_key for key in (*store.keys, fresh)}
        keys = tuple(StoredKey.of(record, private_keys[record.kid]) for record in manifest.keys)
        _writing.commit(
            Keystore(directory, manifest, keys),
            passphrase=settings.keys_passphrase,
            new_keys=(fresh,),
            previous=store,
        )
    logger.info("rotated keys: current %s, next %s", manifest.current.kid, manifest.next.kid)
    return manifest


def prune_keys(
    settings: Settings, *, force: bool = False, now: datetime | None = None
) -> tuple[KeyRecord, ...]:
    """Drop the retiring keys no live token can need any more.

    A key retired at ``t`` signed tokens that expire by ``t + access_token_ttl``; verifiers
    accept them for :data:`PRUNE_MARGIN` longer. Only then is the key dropped.

    Args:
        settings: ``keys_dir``, ``keys_passphrase`` and ``access_token_ttl``.
        force: drop every retiring key, refusing at once the tokens they signed.
        now: the time of the pruning (default: the clock).

    Returns:
        The dropped keys (empty when nothing was due).

    Raises:
        KeystoreError: the keystore cannot be read or written; it is then unchanged.
    """
    directory = _existing(keys_directory(settings))
    keep_for = timedelta(seconds=settings.access_token_ttl) + PRUNE_MARGIN
    with _lock.exclusive(directory):
        moment = _moment(now)  # under the lock, as in rotate_keys
        store = _reading.load(directory, settings.keys_passphrase)
        dropped = tuple(
            key
            for key in store.manifest.retiring
            if force or (key.retired_at is not None and key.retired_at + keep_for <= moment)
        )
        if not dropped:
            return ()
        manifest = store.manifest.without(key.kid for key in dropped)
        keys = tuple(key for key in store.keys if key.kid not in {d.kid for d in dropped})
        _writing.commit(Keystore(directory, manifest, keys), passphrase=None, new_keys=())
    logger.info("pruned keys: %s", ", ".join(key.kid for key in dropped))
    return dropped


def export_jwks(settings: Settings, path: Path | None = None) -> Path:
    """Write the public JWKS to ``path`` (default ``<keys_dir>/jwks.json``) and return the path.

    Raises:
        KeystoreError: the keystore cannot be read, or the file cannot be written.
    """
    directory = _existing(keys_directory(settings))
    default = directory / JWKS_NAME
    if path is None or path.resolve() == default.resolve():
        with _lock.exclusive(directory):
            _writing.commit(
                _reading.load(directory, settings.keys_passphrase), passphrase=None, new_keys=()
            )
        return default
    document = render_jwks(_reading.load(directory, settings.keys_passphrase).jwks())
    _writing.write_jwks_copy(path, document)
    return path


def _existing(directory: Path) -> Path:
    """``directory`` when it holds a manifest; checked before locking, as taking the lock
    would create the directory."""
    if not (directory / MANIFEST_NAME).exists():
        _reading.read_manifest(directory)  # raises the precise error: missing, not a directory, ...
    return directory


def _moment(now: datetime | None) -> datetime:
    # The manifest keeps whole seconds; truncating here keeps a written manifest equal to the
    # one read back.
    return (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)


def _seconds(delta: timedelta) -> int:
    return max(0, round(delta.total_seconds()))
