"""Where a :class:`~gateway.tokens.watcher.KeyRingHolder` reads its keys, and how it learns of
a change: ``manifest.json`` in ``keys_dir``, or the store's keystore version."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Hashable
from typing import Final, Protocol

import asyncpg
from sqlalchemy.exc import SQLAlchemyError

from gateway.settings import Settings
from gateway.store import asyncpg_dsn, make_engine, make_sessionmaker
from gateway.tokens import _database
from gateway.tokens.errors import KeystoreUnreadable
from gateway.tokens.keystore import MANIFEST_NAME, keys_directory
from gateway.tokens.signing import KeyRing, load_keyring

logger = logging.getLogger("gateway.tokens.watcher")

#: How often ``manifest.json`` (or, on SQLite, the store's keystore version) is looked at: a
#: rotation is picked up within about this long (plus the time to load the keys), well inside
#: the 2 s the operations guide promises.
POLL_INTERVAL_SECONDS: Final = 0.5
#: PostgreSQL: how often the version is read while LISTENing, in case a notification is lost.
LISTEN_POLL_SECONDS: Final = 1.0

Refresh = Callable[[], Awaitable[object]]


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
    LISTEN connection is down). The KEK is derived once and kept for later loads."""

    __slots__ = ("_cache", "_changed", "_engine", "_interval", "_sessions", "_settings")

    def __init__(self, settings: Settings, interval: float) -> None:
        self._settings = settings
        self._interval = interval
        self._engine = make_engine(settings)  # connects on first use
        self._sessions = make_sessionmaker(self._engine)
        self._cache = _database.KekCache()
        self._changed = asyncio.Event()

    async def identity(self) -> Hashable:
        try:
            async with self._sessions() as db:
                return await _database.read_version(db)
        except (OSError, SQLAlchemyError) as exc:
            raise _unreadable(exc) from None

    async def load(self) -> KeyRing:
        try:
            async with self._sessions() as db:
                return KeyRing(await _database.load(db, self._settings, self._cache))
        except (OSError, SQLAlchemyError) as exc:
            raise _unreadable(exc) from None

    async def watch(self, refresh: Refresh) -> None:
        if self._settings.is_sqlite:
            while True:
                await self._wait_and(refresh, self._interval)
        else:
            await self._listen(refresh)

    async def close(self) -> None:
        await self._engine.dispose()

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
                connection = await asyncpg.connect(
                    asyncpg_dsn(self._settings.database_url), timeout=10
                )
                await connection.add_listener(_database.CHANNEL, lambda *_: self._changed.set())
                if warned:
                    logger.info("keys: listening to the store again")
                    warned = False
                await refresh()  # whatever was missed while not listening
                while not connection.is_closed():
                    await self._wait_and(refresh, LISTEN_POLL_SECONDS)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                if not warned:
                    logger.warning("keys: cannot LISTEN on the store; polling meanwhile")
                    warned = True
                for _ in range(int(LISTEN_POLL_SECONDS * 5 / self._interval)):
                    await self._wait_and(refresh, self._interval)
            finally:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close()


def _unreadable(exc: BaseException) -> KeystoreUnreadable:
    original = getattr(exc, "orig", None) or exc
    return KeystoreUnreadable(f"the store cannot be read ({type(original).__name__})")
