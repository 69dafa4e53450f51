"""Writing the keystore: new key files, then the manifest (the commit point), then jwks.json."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import NoReturn

from pydantic import SecretStr

from gateway.tokens._atomic import TEMP_NAME, NotDurable, write_atomic
from gateway.tokens._keyfiles import encode_private_key
from gateway.tokens._layout import JWKS_NAME, KEY_FILE, MANIFEST_NAME, PRIVATE_MODE, PUBLIC_MODE
from gateway.tokens._reading import jwks_on_disk
from gateway.tokens._stored import Keystore, StoredKey
from gateway.tokens.errors import KeystoreUnwritable, describe_os_error
from gateway.tokens.jwks import render_jwks
from gateway.tokens.manifest import Manifest

# The public module's name: the keystore's records keep the logger they were always sent to.
logger = logging.getLogger("gateway.tokens.keystore")


def commit(
    store: Keystore,
    *,
    passphrase: SecretStr | None,
    new_keys: tuple[StoredKey, ...],
    previous: Keystore | None = None,
) -> None:
    """Write ``new_keys``, then the manifest (the commit point), then ``jwks.json``.

    Until the manifest is replaced, the old keystore is what every reader sees: a failure there
    leaves it as it was. Once the manifest is renamed into place the change is made, even when
    the directory fsync that follows fails: the new key files it names are kept, and only
    ``jwks.json`` may be stale.

    With ``previous`` (a rotation, which promotes the next key to current), a ``jwks.json``
    that an interrupted change left stale is first repaired to ``previous``'s keys. The key
    this change promotes was ``previous``'s next key, so from the manifest write on, every key
    that may sign is published, whenever the process dies. Without that repair a JWKS left
    stale by one interrupted rotation stayed stale through the next one, whose promoted key
    then signed tokens that no verifier of ``jwks.json`` knew.
    """
    directory = store.directory
    assert directory is not None, "the database keystore is written by _database"
    if previous is not None:
        _repair_stale_jwks(directory, previous)
    written = _write_key_files(directory, new_keys, passphrase)
    manifest_durable = _write_manifest(store, written)
    _write_jwks(store)
    if manifest_durable:
        # Not otherwise: a power loss may yet bring back the old manifest, and the key files
        # only it names (a pruned key) must then still be there. The next change sweeps them.
        _sweep(directory, store.manifest)


def write_jwks_copy(path: Path, document: bytes) -> None:
    """Write a JWKS outside the keystore: no change of the keystore, so nothing to undo."""
    try:
        write_atomic(path, document, mode=PUBLIC_MODE)
    except NotDurable as exc:
        _warn_not_durable(exc, path)
    except OSError as exc:
        raise KeystoreUnwritable(describe_os_error(exc, _failed_path(exc, path))) from None


def _repair_stale_jwks(directory: Path, previous: Keystore) -> None:
    published = render_jwks(previous.jwks())
    if jwks_on_disk(directory) != published:
        # Best effort: when jwks.json cannot be written at all, the write after the
        # manifest fails too and says how to recover, as it always did.
        with contextlib.suppress(OSError):
            write_atomic(directory / JWKS_NAME, published, mode=PUBLIC_MODE)


def _write_key_files(
    directory: Path, keys: tuple[StoredKey, ...], passphrase: SecretStr | None
) -> list[Path]:
    """The written key files; on a failure they are removed and the keystore is unchanged."""
    written: list[Path] = []
    for key in keys:
        key_path = directory / f"{key.kid}.pem"
        try:
            write_atomic(
                key_path, encode_private_key(key.private_key, passphrase), mode=PRIVATE_MODE
            )
        except NotDurable as exc:
            # The file was renamed into place before its directory fsync failed: remove it too.
            _unchanged(exc, key_path, [*written, key_path])
        except OSError as exc:
            _unchanged(exc, key_path, written)
        written.append(key_path)
    return written


def _write_manifest(store: Keystore, written: list[Path]) -> bool:
    """Replace the manifest, the commit point; False when its directory could not be synced."""
    assert store.directory is not None
    manifest_path = store.directory / MANIFEST_NAME
    try:
        write_atomic(manifest_path, store.manifest.render(), mode=PUBLIC_MODE)
    except NotDurable as exc:
        # Readers already see the new manifest, which names the new key files: removing them
        # now would leave a manifest that names missing keys. The change stands.
        _warn_not_durable(exc, manifest_path)
        return False
    except OSError as exc:
        _unchanged(exc, manifest_path, written)
    return True


def _write_jwks(store: Keystore) -> None:
    assert store.directory is not None
    jwks_path = store.directory / JWKS_NAME
    try:
        write_atomic(jwks_path, render_jwks(store.jwks()), mode=PUBLIC_MODE)
    except NotDurable as exc:
        _warn_not_durable(exc, jwks_path)
    except OSError as exc:
        raise KeystoreUnwritable(
            f"{describe_os_error(exc, _failed_path(exc, jwks_path))}; the change was saved in "
            f"{MANIFEST_NAME} but {JWKS_NAME} is stale: fix the cause and run "
            "`gateway keys export-jwks`"
        ) from None


def _unchanged(exc: OSError, path: Path, written: list[Path]) -> NoReturn:
    """Undo a change whose manifest was not replaced: remove its new key files, and say so."""
    for key_path in written:
        with contextlib.suppress(OSError):
            key_path.unlink()
    raise KeystoreUnwritable(
        f"{describe_os_error(exc, _failed_path(exc, path))}; the keystore was left unchanged"
    ) from None


def _warn_not_durable(exc: NotDurable, path: Path) -> None:
    logger.warning(
        "%s was written but its directory could not be synced (%s): the change is made, but a "
        "power loss before the system flushes %s may undo it; check the disk",
        path,
        exc.strerror or type(exc).__name__,
        exc.filename,
    )


def _sweep(directory: Path, manifest: Manifest) -> None:
    """Remove key files the manifest does not name, and temp files of interrupted writes."""
    named = {f"{key.kid}.pem" for key in manifest.keys}
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        stray_key = KEY_FILE.match(entry.name) and entry.name not in named
        if stray_key or TEMP_NAME.match(entry.name):
            try:
                os.unlink(entry.path)
            except OSError as exc:
                # Harmless: the manifest decides, so a leftover file is ignored until next time.
                logger.warning("could not remove %s: %s", entry.path, exc.strerror)


def _failed_path(exc: OSError, default: Path) -> Path:
    return Path(exc.filename) if isinstance(exc.filename, str) else default
