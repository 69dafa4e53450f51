"""The keystore in ``keys_dir``: loading, creating, rotating and pruning signing keys.

Layout: ``<kid>.pem`` per private key (PKCS#8, mode 0600), ``manifest.json`` (the source of
truth) and ``jwks.json`` (the public keys PostgREST reads). A change writes the new key file
first, then the manifest (the commit point), then ``jwks.json``; a process that dies between two
of these writes leaves a keystore that loads and still verifies every token already issued.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final, NoReturn

from pydantic import SecretStr

from gateway.settings import Settings
from gateway.tokens import _lock
from gateway.tokens._atomic import TEMP_NAME, NotDurable, write_atomic
from gateway.tokens.algorithms import (
    PrivateKey,
    SigningAlgorithm,
    check_private_key,
    generate_private_key,
    public_jwk_members,
)
from gateway.tokens.errors import (
    KeystoreCorrupt,
    KeystoreMissing,
    KeystoreUnreadable,
    KeystoreUnwritable,
    RotationRefused,
    describe_os_error,
)
from gateway.tokens.jwks import JWKSDocument, jwks_document, public_jwk, render_jwks
from gateway.tokens.keyfiles import decode_private_key, encode_private_key
from gateway.tokens.manifest import KeyRecord, Manifest
from gateway.tokens.thumbprint import jwk_thumbprint

logger = logging.getLogger(__name__)

MANIFEST_NAME: Final = "manifest.json"
JWKS_NAME: Final = "jwks.json"

#: A token is accepted up to 30 s past its ``exp`` (PostgREST's clock-skew leeway, which
#: ``verify_access_token`` shares), so a retiring key is kept that much longer than the token
#: lifetime. The same margin covers a worker that keeps signing with the old key until its
#: watcher notices the rotation (at most a second or two).
PRUNE_MARGIN: Final = timedelta(seconds=30)

_KEY_FILE: Final = re.compile(r"^[A-Za-z0-9_-]{16,64}\.pem$")
_MAX_FILE_BYTES: Final = 1 << 20
_PRIVATE_MODE: Final = 0o600
# The directory and the public files stay readable by others (subject to the umask): PostgREST
# often runs as another user and reads jwks.json; the private keys are 0600 each.
_DIRECTORY_MODE: Final = 0o755
_PUBLIC_MODE: Final = 0o644


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
    """A loaded keystore: the manifest and its keys, in manifest order (current, next, retiring)."""

    directory: Path
    manifest: Manifest
    keys: tuple[StoredKey, ...]

    @property
    def current(self) -> StoredKey:
        return next(key for key in self.keys if key.record.state == "current")

    def jwks(self) -> JWKSDocument:
        """The public JWK Set: the current, next and retiring keys (RFC 7517 section 5)."""
        return jwks_document(key.public_jwk for key in self.keys)


#: A next key must have been published this many JWKS max-ages before it may sign.
NEXT_KEY_MIN_AGE_FACTOR = 2


def keys_directory(settings: Settings) -> Path:
    return Path(settings.keys_dir)


def read_manifest(settings: Settings) -> Manifest:
    """The manifest alone: what ``gateway keys list`` shows, readable without the passphrase.

    Raises:
        KeystoreError: the keystore is missing, unreadable or corrupt.
    """
    return _read_manifest(keys_directory(settings))


def load_keystore(settings: Settings) -> Keystore:
    """Read the keystore without changing it; the manifest decides which key files count.

    Raises:
        KeystoreError: the keystore is missing, unreadable or corrupt, or a key cannot be
            decrypted.
    """
    return _load(keys_directory(settings), settings.keys_passphrase)


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
        store = _load(directory, settings.keys_passphrase)
        if _jwks_on_disk(directory) != render_jwks(store.jwks()):
            with _lock.exclusive(directory):
                _commit(_load(directory, settings.keys_passphrase), passphrase=None, new_keys=())
        return False
    try:
        directory.mkdir(mode=_DIRECTORY_MODE, parents=True, exist_ok=True)
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
        _commit(store, passphrase=settings.keys_passphrase, new_keys=store.keys)
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
    moment = _moment(now)
    with _lock.exclusive(directory):
        store = _load(directory, settings.keys_passphrase)
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
        _commit(
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
    moment = _moment(now)
    keep_for = timedelta(seconds=settings.access_token_ttl) + PRUNE_MARGIN
    with _lock.exclusive(directory):
        store = _load(directory, settings.keys_passphrase)
        dropped = tuple(
            key
            for key in store.manifest.retiring
            if force or (key.retired_at is not None and key.retired_at + keep_for <= moment)
        )
        if not dropped:
            return ()
        manifest = store.manifest.without(key.kid for key in dropped)
        keys = tuple(key for key in store.keys if key.kid not in {d.kid for d in dropped})
        _commit(Keystore(directory, manifest, keys), passphrase=None, new_keys=())
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
            _commit(_load(directory, settings.keys_passphrase), passphrase=None, new_keys=())
        return default
    document = render_jwks(_load(directory, settings.keys_passphrase).jwks())
    try:
        write_atomic(path, document, mode=_PUBLIC_MODE)
    except NotDurable as exc:
        _warn_not_durable(exc, path)
    except OSError as exc:
        raise KeystoreUnwritable(describe_os_error(exc, _failed_path(exc, path))) from None
    return path


def _commit(
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
    jwks_path = directory / JWKS_NAME
    if previous is not None:
        published = render_jwks(previous.jwks())
        if _jwks_on_disk(directory) != published:
            # Best effort: when jwks.json cannot be written at all, the write after the
            # manifest fails too and says how to recover, as it always did.
            with contextlib.suppress(OSError):
                write_atomic(jwks_path, published, mode=_PUBLIC_MODE)
    written: list[Path] = []
    for key in new_keys:
        key_path = directory / f"{key.kid}.pem"
        try:
            write_atomic(
                key_path, encode_private_key(key.private_key, passphrase), mode=_PRIVATE_MODE
            )
        except NotDurable as exc:
            # The file was renamed into place before its directory fsync failed: remove it too.
            _unchanged(exc, key_path, [*written, key_path])
        except OSError as exc:
            _unchanged(exc, key_path, written)
        written.append(key_path)
    manifest_path = directory / MANIFEST_NAME
    manifest_durable = True
    try:
        write_atomic(manifest_path, store.manifest.render(), mode=_PUBLIC_MODE)
    except NotDurable as exc:
        # Readers already see the new manifest, which names the new key files: removing them
        # now would leave a manifest that names missing keys. The change stands.
        _warn_not_durable(exc, manifest_path)
        manifest_durable = False
    except OSError as exc:
        _unchanged(exc, manifest_path, written)
    try:
        write_atomic(jwks_path, render_jwks(store.jwks()), mode=_PUBLIC_MODE)
    except NotDurable as exc:
        _warn_not_durable(exc, jwks_path)
    except OSError as exc:
        raise KeystoreUnwritable(
            f"{describe_os_error(exc, _failed_path(exc, jwks_path))}; the change was saved in "
            f"{MANIFEST_NAME} but {JWKS_NAME} is stale: fix the cause and run "
            "`gateway keys export-jwks`"
        ) from None
    if manifest_durable:
        # Not otherwise: a power loss may yet bring back the old manifest, and the key files
        # only it names (a pruned key) must then still be there. The next change sweeps them.
        _sweep(directory, store.manifest)


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
        stray_key = _KEY_FILE.match(entry.name) and entry.name not in named
        if stray_key or TEMP_NAME.match(entry.name):
            try:
                os.unlink(entry.path)
            except OSError as exc:
                # Harmless: the manifest decides, so a leftover file is ignored until next time.
                logger.warning("could not remove %s: %s", entry.path, exc.strerror)


def _load(directory: Path, passphrase: SecretStr | None) -> Keystore:
    manifest = _read_manifest(directory)
    keys = tuple(_read_key(directory, record, passphrase) for record in manifest.keys)
    return Keystore(directory=directory, manifest=manifest, keys=keys)


def _read_manifest(directory: Path) -> Manifest:
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
        data = file.read(_MAX_FILE_BYTES + 1)
    if len(data) > _MAX_FILE_BYTES:
        raise KeystoreCorrupt(f"{path} is larger than {_MAX_FILE_BYTES} bytes; it is not ours")
    return data


def _jwks_on_disk(directory: Path) -> bytes | None:
    try:
        return (directory / JWKS_NAME).read_bytes()
    except OSError:
        return None


def _existing(directory: Path) -> Path:
    """``directory`` when it holds a manifest; checked before locking, as taking the lock
    would create the directory."""
    if not (directory / MANIFEST_NAME).exists():
        _read_manifest(directory)  # raises the precise error: missing, not a directory, ...
    return directory


def _thumbprint(private_key: PrivateKey) -> str:
    return jwk_thumbprint(public_jwk_members(private_key.public_key()))


def _moment(now: datetime | None) -> datetime:
    # The manifest keeps whole seconds; truncating here keeps a written manifest equal to the
    # one read back.
    return (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)


def _seconds(delta: timedelta) -> int:
    return max(0, round(delta.total_seconds()))


def _failed_path(exc: OSError, default: Path) -> Path:
    return Path(exc.filename) if isinstance(exc.filename, str) else default
