"""The keystore in the store (GATEWAY_KEYSTORE=database): the same lifecycle as the directory's.

Rows of ``signing_keys`` are the manifest, each with its private key sealed under the
passphrase's key-encryption key (``_sealing``); ``keystore_state`` (one row) holds the version
that every change bumps, the KEK's salt and an HMAC (under a key of the KEK) of the manifest
and the version, which every read checks: rows changed, put back or removed by anyone without
the passphrase are refused (:data:`TAMPERED`). Every change is one store transaction, the commit
point: it first locks the state row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite a write
to it, which takes the database's write lock at once), so changes from two hosts run one after
the other and the second decides on what the first committed. On PostgreSQL the transaction
also NOTIFYs :data:`CHANNEL`, delivered at its commit, so replicas reload within moments.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Final, TypeVar

from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import StoreUnavailable
from gateway.settings import Settings
from gateway.store import KeystoreState, SigningKey, make_sessionmaker, open_store
from gateway.tokens import _lifecycle, _sealing
from gateway.tokens._stored import Keystore, StoredKey
from gateway.tokens.errors import KeyPassphraseError, KeystoreCorrupt, KeystoreMissing
from gateway.tokens.manifest import MANIFEST_FORMAT, KeyRecord, Manifest
from gateway.tokens.thumbprint import jwk_thumbprint

logger = logging.getLogger("gateway.tokens.keystore")

#: Every key change NOTIFYs this channel (payload: the new version) as it commits.
CHANNEL: Final = "gateway_keys"
_STATE_ID: Final = 1
_MAC_LABEL: Final = "gateway keystore manifest v1"
#: What a manifest MAC that does not match says.
TAMPERED: Final = (
    "the keystore in the store was changed without the passphrase (its manifest MAC does not "
    "match the signing_keys rows): restore the store from a backup, or find who writes to it"
)

T = TypeVar("T")


class KekCache:
    """The KEK of the last (salt, passphrase) seen: a replica derives it once, not per reload."""

    __slots__ = ("_kek", "_of")

    def __init__(self) -> None:
        self._of: tuple[bytes, str] | None = None
        self._kek: _sealing.Kek | None = None

    async def kek(self, state: KeystoreState, passphrase: str) -> _sealing.Kek:
        """The KEK of ``state``'s salt, checked against its passphrase check.

        Raises:
            KeyPassphraseError: ``passphrase`` is not the keystore's.
            KeystoreCorrupt: the state row is incomplete or names an unknown derivation.
        """
        if state.kek_salt is None or state.kek_check is None or state.kdf is None:
            raise KeystoreCorrupt("the store's keystore has keys but no key-derivation salt")
        of = (state.kek_salt, passphrase)
        if self._of != of or self._kek is None:
            kek = await asyncio.to_thread(
                _sealing.derive_kek, passphrase, state.kek_salt, state.kdf
            )
            _sealing.verify_check(kek, state.kek_check)
            self._of, self._kek = of, kek
        return self._kek


def passphrase_of(settings: Settings) -> str:
    """The passphrase the keys are sealed under.

    Raises:
        KeyPassphraseError: none is set; the database keystore never keeps a key in clear.
    """
    value = settings.keys_passphrase_value
    if value is None:
        raise KeyPassphraseError(
            "the keystore in the store needs GATEWAY_KEYS_PASSPHRASE or "
            "GATEWAY_KEYS_PASSPHRASE_FILE: its private keys are always encrypted"
        )
    return value


async def in_store(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one store transaction of a short-lived engine (a command, a start-up)."""
    engine = await open_store(settings)
    try:
        async with make_sessionmaker(engine).begin() as db:
            return await work(db)
    except (OSError, SQLAlchemyError) as exc:
        raise StoreUnavailable(
            f"the keystore in the store cannot be used: {_describe(exc)}; check that the store "
            "is reachable and migrated (`gateway db upgrade`)"
        ) from None
    finally:
        await engine.dispose()


async def read_version(db: AsyncSession) -> int | None:
    """The keystore's version: one indexed read, what replicas poll. None: not migrated."""
    version = await db.scalar(select(KeystoreState.version).where(KeystoreState.id == _STATE_ID))
    return None if version is None else int(version)


async def read_state(db: AsyncSession) -> KeystoreState | None:
    """The state row as it is (no lock), None when the store is not migrated."""
    return await db.scalar(select(KeystoreState).where(KeystoreState.id == _STATE_ID))


async def read_manifest(db: AsyncSession, settings: Settings) -> Manifest:
    """The manifest, checked against the passphrase and the manifest MAC (no key is opened).

    Raises:
        KeystoreMissing: the store holds no keys yet.
        KeyPassphraseError: the passphrase is not the keystore's.
        KeystoreCorrupt: the rows do not make a valid manifest, or do not match its MAC.
    """
    state = await _state(db, lock=False)
    manifest = _manifest_of(await _rows(db))
    _authenticate(await KekCache().kek(state, passphrase_of(settings)), state, manifest)
    return manifest


async def load(db: AsyncSession, settings: Settings, cache: KekCache | None = None) -> Keystore:
    """Read the keystore, each private key opened and checked against its kid.

    Raises:
        KeystoreError: no keystore in the store, a wrong passphrase, or damaged rows.
    """
    return (await load_versioned(db, settings, cache))[0]


async def load_versioned(
    db: AsyncSession, settings: Settings, cache: KekCache | None = None
) -> tuple[Keystore, int]:
    """:func:`load`, and the version the keystore was read at (authenticated by the MAC)."""
    state = await _state(db, lock=False)
    rows = await _rows(db)
    manifest = _manifest_of(rows)
    kek = await (cache or KekCache()).kek(state, passphrase_of(settings))
    _authenticate(kek, state, manifest)
    return _opened(kek, manifest, rows), int(state.version)


async def ensure(db: AsyncSession, settings: Settings, *, now: datetime | None = None) -> bool:
    """Create the keystore (a current and a next key) unless the store holds one.

    Returns:
        True when it was created (in this transaction).
    """
    passphrase = passphrase_of(settings)
    state = await _state(db, lock=True)
    rows = await _rows(db)
    if rows:
        # A wrong passphrase or a tampered keystore is said at start-up.
        _authenticate(await KekCache().kek(state, passphrase), state, _manifest_of(rows))
        return False
    kek = await _new_kek(state, passphrase)
    current, upcoming = _lifecycle.first_keys(settings.signing_alg, now=_lifecycle.moment(now))
    await _write(db, state, kek, Manifest.new(current.record, upcoming.record), (current, upcoming))
    logger.info("created the keystore in the store (current key %s)", current.kid)
    return True


async def rotate(
    db: AsyncSession, settings: Settings, *, force: bool = False, now: datetime | None = None
) -> Manifest:
    """As :func:`gateway.tokens.keystore.rotate_keys`, in one transaction on the locked state.

    The clock is read once the state row is locked: a rotation that waited for another one
    then decides on the next key that rotation made, which is too young, and is refused.
    """
    state = await _state(db, lock=True)
    moment = _lifecycle.moment(now)
    rows = await _rows(db)
    manifest = _manifest_of(rows)
    kek = await KekCache().kek(state, passphrase_of(settings))
    _authenticate(kek, state, manifest)  # before any decision is taken on the rows
    _lifecycle.check_rotation(manifest, now=moment, jwks_max_age=settings.jwks_max_age, force=force)
    store = _opened(kek, manifest, rows)
    fresh = StoredKey.generate(settings.signing_alg, now=moment)
    new_manifest, keys = _lifecycle.rotated(manifest, store.keys, fresh, now=moment)
    await _write(db, state, kek, new_manifest, keys)
    logger.info(
        "rotated keys: current %s, next %s", new_manifest.current.kid, new_manifest.next.kid
    )
    return new_manifest


async def prune(
    db: AsyncSession, settings: Settings, *, force: bool = False, now: datetime | None = None
) -> tuple[KeyRecord, ...]:
    """As :func:`gateway.tokens.keystore.prune_keys`, in one transaction on the locked state."""
    state = await _state(db, lock=True)
    moment = _lifecycle.moment(now)
    manifest = _manifest_of(await _rows(db))
    kek = await KekCache().kek(state, passphrase_of(settings))
    _authenticate(kek, state, manifest)
    dropped = _lifecycle.due_for_pruning(
        manifest, now=moment, access_token_ttl=settings.access_token_ttl, force=force
    )
    if not dropped:
        return ()
    kept = manifest.without(key.kid for key in dropped)
    await _write(db, state, kek, kept, ())
    logger.info("pruned keys: %s", ", ".join(key.kid for key in dropped))
    return dropped


async def copy_in(db: AsyncSession, settings: Settings, source: Keystore) -> bool:
    """Copy ``source`` (a directory keystore) into the store: same kids, states and times.

    Returns:
        True when copied; False when the store already holds exactly these keys.

    Raises:
        KeystoreCorrupt: the store holds another keystore; nothing is changed.
    """
    passphrase = passphrase_of(settings)
    state = await _state(db, lock=True)
    rows = await _rows(db)
    if rows:
        held = _manifest_of(rows)
        if _records(held) != _records(source.manifest):
            raise KeystoreCorrupt(
                "the store already holds another keystore (current key "
                f"{held.current.kid}, the directory's is {source.manifest.current.kid}): "
                "nothing was copied; migrate into an empty store"
            )
        kek = await KekCache().kek(state, passphrase)
        _authenticate(kek, state, held)
        _opened(kek, held, rows)  # the same private keys
        return False
    kek = await _new_kek(state, passphrase)
    await _write(db, state, kek, source.manifest, source.keys)
    logger.info("copied the keystore into the store (current key %s)", source.current.kid)
    return True


async def _state(db: AsyncSession, *, lock: bool) -> KeystoreState:
    if lock and db.get_bind().dialect.name == "sqlite":
        # A write first: SQLite then holds its write lock from here to the commit (what BEGIN
        # IMMEDIATE does), instead of failing a read transaction that tries to write later.
        await db.execute(
            update(KeystoreState)
            .where(KeystoreState.id == _STATE_ID)
            .values(version=KeystoreState.version)
        )
    query = select(KeystoreState).where(KeystoreState.id == _STATE_ID)
    state = await db.scalar(query.with_for_update() if lock else query)
    if state is None:
        raise KeystoreMissing(
            "the store has no keystore state row: run `gateway db upgrade` to migrate it"
        )
    return state


async def _rows(db: AsyncSession) -> list[SigningKey]:
    return list(await db.scalars(select(SigningKey).order_by(SigningKey.kid)))


async def _new_kek(state: KeystoreState, passphrase: str) -> _sealing.Kek:
    """A fresh salt for a keystore made or copied into an empty store, and its KEK."""
    salt = _sealing.new_salt()
    kek = await asyncio.to_thread(_sealing.derive_kek, passphrase, salt)
    state.kdf, state.kek_salt, state.kek_check = _sealing.KDF, salt, _sealing.make_check(kek)
    return kek


async def _write(
    db: AsyncSession,
    state: KeystoreState,
    kek: _sealing.Kek,
    manifest: Manifest,
    keys: tuple[StoredKey, ...],
) -> None:
    """Make the rows say ``manifest``: new keys sealed and inserted, the rest updated or
    deleted; then the version is bumped, the manifest MAC of both written in the same
    transaction and, on PostgreSQL, replicas are told at commit."""
    existing = {row.kid: row for row in await _rows(db)}
    private_keys = {key.kid: key.private_key for key in keys}
    for record in manifest.keys:
        row = existing.get(record.kid)
        if row is None:
            sealed = _sealing.seal_private_key(
                kek, private_keys[record.kid], kid=record.kid, alg=record.alg
            )
            db.add(_row_of(record, sealed))
        else:
            row.state = record.state
            row.activated_at = record.activated_at
            row.retired_at = record.retired_at
    dropped = set(existing) - {record.kid for record in manifest.keys}
    if dropped:
        await db.execute(delete(SigningKey).where(SigningKey.kid.in_(dropped)))
    state.version = state.version + 1
    state.manifest_mac = kek.mac(_canonical(manifest, state.version))
    state.updated_at = _lifecycle.moment(None)
    await db.flush()
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(
            text("SELECT pg_notify(:channel, :version)"),
            {"channel": CHANNEL, "version": str(state.version)},
        )


def _canonical(manifest: Manifest, version: int) -> bytes:
    """What the manifest MAC covers: every key's kid, alg, state and times (as the manifest
    keeps them), in kid order, and the version; canonical JSON."""
    document = {
        "label": _MAC_LABEL,
        "version": int(version),
        "keys": sorted((record.to_json() for record in manifest.keys), key=lambda k: k["kid"]),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _authenticate(kek: _sealing.Kek, state: KeystoreState, manifest: Manifest) -> None:
    """Raises KeystoreCorrupt (:data:`TAMPERED`) unless the state's MAC is ``manifest``'s."""
    if not kek.verify_mac(_canonical(manifest, state.version), state.manifest_mac):
        raise KeystoreCorrupt(TAMPERED)


def _row_of(record: KeyRecord, sealed: bytes) -> SigningKey:
    return SigningKey(
        kid=record.kid,
        alg=record.alg,
        state=record.state,
        created_at=record.created_at,
        activated_at=record.activated_at,
        retired_at=record.retired_at,
        sealed=sealed,
    )


def _manifest_of(rows: list[SigningKey]) -> Manifest:
    """The rows as a manifest, checked exactly as ``manifest.json`` is (one parser for both)."""
    if not rows:
        raise KeystoreMissing(
            "no keystore in the store: run `gateway keys init`, start `gateway serve` (which "
            "creates one), or copy a directory keystore with `gateway keys migrate --to database`"
        )
    document = {
        "format": MANIFEST_FORMAT,
        "keys": [
            KeyRecord(
                kid=row.kid,
                alg=row.alg,  # type: ignore[arg-type]  # checked by Manifest.parse
                state=row.state,  # type: ignore[arg-type]
                created_at=row.created_at,
                activated_at=row.activated_at,
                retired_at=row.retired_at,
            ).to_json()
            for row in sorted(rows, key=_newest_retired_first)
        ],
    }
    try:
        return Manifest.parse(json.dumps(document).encode("utf-8"))
    except ValueError as exc:
        raise KeystoreCorrupt(f"the store's signing_keys are invalid: {exc}") from None


def _newest_retired_first(row: SigningKey) -> tuple[float, float, str]:
    """The order the directory's manifest keeps retiring keys in (the latest retired first);
    ``Manifest.parse`` then puts current and next ahead, keeping this order among the rest."""
    retired = row.retired_at.timestamp() if row.retired_at else float("inf")
    return (-retired, -row.created_at.timestamp(), row.kid)


def _opened(kek: _sealing.Kek, manifest: Manifest, rows: list[SigningKey]) -> Keystore:
    by_kid = {row.kid: row for row in rows}
    keys = []
    for record in manifest.keys:
        private_key = _sealing.open_private_key(
            kek, by_kid[record.kid].sealed, kid=record.kid, alg=record.alg
        )
        stored = StoredKey.of(record, private_key)
        if jwk_thumbprint(stored.public_jwk) != record.kid:
            raise KeystoreCorrupt(
                f"the store's key {record.kid} does not match its kid (its RFC 7638 thumbprint "
                "differs); restore the keystore from a backup"
            )
        keys.append(stored)
    return Keystore(directory=None, manifest=manifest, keys=tuple(keys))


def _records(manifest: Manifest) -> set[KeyRecord]:
    return set(manifest.keys)


def _describe(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    return type(original).__name__
