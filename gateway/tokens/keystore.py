"""The keystore: loading, creating, rotating and pruning signing keys, wherever they live.

Every function here is the one way in for the CLI and the runtime; with
``GATEWAY_KEYSTORE=database`` each runs its database variant (``_database``: one store
transaction per change) and otherwise works on the directory ``keys_dir`` described below.
The database variants are async; these run them with :func:`asyncio.run`, so call them from a
thread (``asyncio.to_thread``) when an event loop is running.

The directory keystore:

Layout: ``<kid>.pem`` per private key (PKCS#8, mode 0600), ``manifest.json`` (the source of
truth) and ``jwks.json`` (the public keys PostgREST reads). A change writes the new key file
first, then the manifest (the commit point), then ``jwks.json``; a process that dies between two
of these writes leaves a keystore that loads and still verifies every token already issued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.settings import Settings
from gateway.tokens import _database, _lifecycle, _lock, _reading, _writing
from gateway.tokens._layout import DIRECTORY_MODE, JWKS_NAME, MANIFEST_NAME
from gateway.tokens._lifecycle import NEXT_KEY_MIN_AGE_FACTOR, PRUNE_MARGIN
from gateway.tokens._stored import Keystore, StoredKey
from gateway.tokens.errors import (
    KeystoreCorrupt,
    KeystoreMissing,
    KeystoreUnwritable,
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
    "in_database",
    "keys_directory",
    "load_keystore",
    "migrate_to_database",
    "prune_keys",
    "read_manifest",
    "rotate_keys",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def in_database(settings: Settings) -> bool:
    """True when the keys live in the store (``GATEWAY_KEYSTORE=database``)."""
    return settings.keystore == "database"


def _in_store(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    return asyncio.run(_database.in_store(settings, work))


def keys_directory(settings: Settings) -> Path:
    return Path(settings.keys_dir)


def read_manifest(settings: Settings) -> Manifest:
    """The manifest alone: what ``gateway keys list`` shows. A directory's is readable without
    the passphrase; the store's is checked against the passphrase and its manifest MAC first.

    Raises:
        KeystoreError: the keystore is missing, unreadable or corrupt.
    """
    if in_database(settings):
        return _in_store(settings, lambda db: _database.read_manifest(db, settings))
    return _reading.read_manifest(keys_directory(settings))


def load_keystore(settings: Settings) -> Keystore:
    """Read the keystore without changing it; the manifest decides which key files count.

    Raises:
        KeystoreError: the keystore is missing, unreadable or corrupt, or a key cannot be
            decrypted.
    """
    if in_database(settings):
        return _in_store(settings, lambda db: _database.load(db, settings))
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
    if in_database(settings):
        return _in_store(settings, lambda db: _database.ensure(db, settings, now=now))
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
        current, upcoming = _lifecycle.first_keys(settings.signing_alg, now=_moment(now))
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
    if in_database(settings):
        return _in_store(settings, lambda db: _database.rotate(db, settings, force=force, now=now))
    directory = _existing(keys_directory(settings))
    with _lock.exclusive(directory):
        # Read the clock under the lock: a moment taken before waiting for another rotation
        # would be older than the next key that rotation creates, and refuse this one.
        moment = _moment(now)
        store = _reading.load(directory, settings.keys_passphrase)
        _lifecycle.check_rotation(
            store.manifest, now=moment, jwks_max_age=settings.jwks_max_age, force=force
        )
        fresh = StoredKey.generate(settings.signing_alg, now=moment)
        manifest, keys = _lifecycle.rotated(store.manifest, store.keys, fresh, now=moment)
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
    if in_database(settings):
        return _in_store(settings, lambda db: _database.prune(db, settings, force=force, now=now))
    directory = _existing(keys_directory(settings))
    with _lock.exclusive(directory):
        moment = _moment(now)  # under the lock, as in rotate_keys
        store = _reading.load(directory, settings.keys_passphrase)
        dropped = _lifecycle.due_for_pruning(
            store.manifest, now=moment, access_token_ttl=settings.access_token_ttl, force=force
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

    The database keystore keeps no ``jwks.json``: it writes a copy to ``path``, which it needs.

    Raises:
        KeystoreError: the keystore cannot be read, or the file cannot be written.
    """
    if in_database(settings):
        if path is None:
            raise KeystoreMissing(
                "GATEWAY_KEYSTORE=database keeps no jwks.json: give the file to write "
                "(`gateway keys export-jwks PATH`, or '-' for standard output)"
            )
        _writing.write_jwks_copy(path, render_jwks(load_keystore(settings).jwks()))
        return path
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


def migrate_to_database(settings: Settings) -> tuple[Keystore, bool]:
    """Copy the directory keystore of ``keys_dir`` into the store, in one transaction.

    Same kids, states and times; each private key is sealed under the passphrase's KEK.

    Returns:
        The keystore copied, and True when it was copied (False: the store already held
        exactly these keys, and nothing changed).

    Raises:
        KeystoreError: the directory keystore cannot be read, no passphrase is set, or the
            store holds another keystore.
    """
    _database.passphrase_of(settings)  # before anything is read
    directory = _existing(keys_directory(settings))
    # The directory's lock, held while it is read and copied: no rotation or prune of it runs
    # half-way through, so the store gets one consistent keystore.
    with _lock.exclusive(directory):
        source = _reading.load(directory, settings.keys_passphrase)
        copied = _in_store(settings, lambda db: _database.copy_in(db, settings, source))
    return source, copied


def _existing(directory: Path) -> Path:
    """``directory`` when it holds a manifest; checked before locking, as taking the lock
    would create the directory."""
    if not (directory / MANIFEST_NAME).exists():
        _reading.read_manifest(directory)  # raises the precise error: missing, not a directory, ...
    return directory


_moment = _lifecycle.moment
