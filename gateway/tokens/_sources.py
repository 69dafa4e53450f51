"""Where a :class:`~gateway.tokens.watcher.KeyRingHolder` reads its keys, and how it learns of
a change: ``manifest.json`` in ``keys_dir``, or the store's keystore version."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Hashable
from typing import Final, Protocol, TypeVar

import asyncpg
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gateway.settings import Settings
from gateway.store import asyncpg_dsn, make_engine, make_sessionmaker
from gateway.tokens import _database
from gateway.tokens.errors import KeystoreCorrupt, KeystoreUnreadable
from gateway.tokens.keystore import MANIFEST_NAME, keys_directory
from gateway.tokens.signing import KeyRing, load_keyring

logger = logging.getLogger("gateway.tokens.watcher")

#: How often ``manifest.json`` (or, on SQLite, the store's keystore version) is looked at: a
#: rotation is picked up within about this long (plus the time to load the keys), well inside
#: the 2 s the operations guide promises.
POLL_INTERVAL_SECONDS: Final = 0.5
#: PostgreSQL: how often the version is read while LISTENing, in case a notification is lost.
LISTEN_POLL_SECONDS: Final = 1.0
#: The longest a read of the store (a poll, a load, the LISTEN connection's probe) may take
#: before its connection is given up: a stalled store never freezes a reload or stop().
STORE_TIMEOUT_SECONDS: Final = 1.5
#: The longest a new LISTEN connection may take to open.
CONNECT_TIMEOUT_SECONDS: Final = 5.0

Refresh = Callable[[], Awaitable[object]]
T = TypeVar("T")


class KeySource(Protocol):
    async def identity(self) -> Hashable:
        """What changes with every key change. Raises KeystoreError when it cannot be read."""

    async def load(self) -> KeyRing:
        """The keys as a ring. Raises KeystoreError."""

    async def watch(self, refresh: Refresh) -> None:
        """Call ``refresh`` whenever the keys may have changed, until cancelled."""

    async def close(self) -> None: ...


class DirectorySource:
    """``manifest.json``: its device, inode, size and mtime (every write replaces the file)."""

    __slots__ = ("_interval", "_settings")

    def __init__(self, settings: Settings, interval: float) -> None:
        self._settings = settings
        self._interval = interval

    async def identity(self) -> Hashable:
        try:
            status = os.stat(keys_directory(self._settings) / MANIFEST_NAME)
        except OSError as exc:
            raise KeystoreUnreadable(f"cannot stat {MANIFEST_NAME}: {exc.strerror}") from None
        return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)

    async def load(self) -> KeyRing:
        return await asyncio.to_thread(load_keyring, self._settings)

    async def watch(self, refresh: Refresh) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await refresh()

    async def close(self) -> None:
        return None


class DatabaseSource:
    """The store's keystore: its version, read every :data:`POLL_INTERVAL_SECONDS` on SQLite;
    on PostgreSQL a LISTEN on the change channel, and the version every
    :data:`LISTEN_POLL_SECONDS` in case a notification is missed (polling faster while the
    LISTEN connection is down). The KEK is derived once and kept for later loads.

    A stalled store never freezes it: every read is bounded by :data:`STORE_TIMEOUT_SECONDS`
    (then its connections are dropped, not politely closed), the LISTEN connection is probed
    with ``SELECT 1`` under the same bound, and :meth:`close` gives up on a connection that
    does not close in time. A keystore older than one already loaded (a rolled-back store) is
    refused: the ring in service stays."""

    __slots__ = ("_cache", "_changed", "_engine", "_interval", "_loaded", "_sessions", "_settings")

    def __init__(self, settings: Settings, interval: float) -> None:
        self._settings = settings
        self._interval = interval
        self._engine = make_engine(settings)  # connects on first use
        self._sessions = make_sessionmaker(self._engine)
        self._cache = _database.KekCache()
        self._changed = asyncio.Event()
        self._loaded: int | None = None  # the highest version loaded

    async def identity(self) -> Hashable:
        return await self._bounded(_database.read_version)

    async def load(self) -> KeyRing:
        # The KEK is derived (CPU-bound, uncancellable) outside the store's time bound; the
        # load below then finds it in the cache.
        state = await self._bounded(_database.read_state)
        if state is not None and state.kek_salt is not None:
            await self._cache.kek(state, _database.passphrase_of(self._settings))
        keystore, version = await self._bounded(
            lambda db: _database.load_versioned(db, self._settings, self._cache)
        )
        if self._loaded is not None and version < self._loaded:
            raise KeystoreCorrupt(
                f"the store's keystore is at version {version}, older than version "
                f"{self._loaded} already loaded (rolled back, or restored from a backup): "
                "restart the gateway to accept it"
            )
        self._loaded = version
        return KeyRing(keystore)

    async def watch(self, refresh: Refresh) -> None:
        if self._settings.is_sqlite:
            while True:
                await self._wait_and(refresh, self._interval)
        else:
            await self._listen(refresh)

    async def close(self) -> None:
        await _dispose(self._engine)

    async def _bounded(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """``work`` in a session, within :data:`STORE_TIMEOUT_SECONDS`."""
        try:
            async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
                async with self._sessions() as db:
                    return await work(db)
        except TimeoutError:
            # The connection may be stuck mid-reply: drop the pool (a fresh connection next
            # time) instead of waiting on it.
            stalled, self._engine = self._engine, make_engine(self._settings)
            self._sessions = make_sessionmaker(self._engine)
            await _dispose(stalled)
            raise KeystoreUnreadable(
                f"the store did not answer within {STORE_TIMEOUT_SECONDS:g} s"
            ) from None
        except (OSError, SQLAlchemyError) as exc:
            raise _unreadable(exc) from None

    async def _wait_and(self, refresh: Refresh, interval: float) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns a wake-up that
        # arrives with a cancel and swallows the cancel, and stop() then waits forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await self._changed.wait()
        self._changed.clear()
        await refresh()

    async def _listen(self, refresh: Refresh) -> None:
        """The LISTEN loop of the revocation feed (gateway/revocation/feed.py), for keys."""
        warned = False
        while True:
            connection = None
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
                    connection = await asyncpg.connect(
                        asyncpg_dsn(self._settings.database_url),
                        timeout=CONNECT_TIMEOUT_SECONDS,
                        command_timeout=STORE_TIMEOUT_SECONDS,
                    )
                    await connection.add_listener(_database.CHANNEL, lambda *_: self._changed.set())
                if warned:
                    logger.info("keys: listening to the store again")
                    warned = False
                await refresh()  # whatever was missed while not listening
                while not connection.is_closed():
                    await self._wait_and(refresh, LISTEN_POLL_SECONDS)
                    # A connection that stopped answering delivers no notification and
                    # raises nothing by itself: ask it something.
                    async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
                        await connection.fetchval("SELECT 1")
            except Exception as exc:  # noqa: BLE001  # the watch task must never die
                if not warned:
                    logger.warning(
                        "keys: cannot LISTEN on the store (%s); polling meanwhile",
                        type(exc).__name__,
                    )
                    warned = True
                if connection is not None:
                    connection.terminate()
                    connection = None
                for _ in range(int(LISTEN_POLL_SECONDS * 5 / self._interval)):
                    await self._wait_and(refresh, self._interval)
            finally:
                if connection is not None:
                    connection.terminate()  # close() would wait on a stalled peer


async def _dispose(engine: AsyncEngine) -> None:
    """Close ``engine``'s connections, giving up on ones that do not close in time."""
    try:
        async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
            await engine.dispose()
    except Exception:  # noqa: BLE001  # a stalled or broken connection: just let go of it
        await engine.dispose(close=False)


def _unreadable(exc: BaseException) -> KeystoreUnreadable:
    original = getattr(exc, "orig", None) or exc
    return KeystoreUnreadable(f"the store cannot be read ({type(original).__name__})")
