"""Keeps a running gateway's :class:`KeyRing` in step with the keystore, without a restart."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable

from gateway.settings import Settings
from gateway.tokens._sources import (
    LISTEN_POLL_SECONDS,
    POLL_INTERVAL_SECONDS,
    DatabaseSource,
    DirectorySource,
    KeySource,
)
from gateway.tokens.errors import KeystoreError
from gateway.tokens.keystore import in_database
from gateway.tokens.signing import KeyRing

__all__ = ["LISTEN_POLL_SECONDS", "POLL_INTERVAL_SECONDS", "KeyRingHolder"]

logger = logging.getLogger(__name__)


class KeyRingHolder:
    """Holds the current :class:`KeyRing` and replaces it when the keystore changes.

    Directory keystore: a background task stats the manifest every
    :data:`POLL_INTERVAL_SECONDS`; when its device, inode, size or mtime differ (every write
    replaces the file, so the inode always does), the keystore is loaded in a worker thread and
    the new ring is swapped in. Database keystore (``GATEWAY_KEYSTORE=database``): the store's
    keystore version is the identity, read on a NOTIFY (PostgreSQL) and every
    :data:`LISTEN_POLL_SECONDS` (every :data:`POLL_INTERVAL_SECONDS` on SQLite or while the
    LISTEN connection is down). A keystore that cannot be loaded (half-written, unreadable, a
    key missing, the store down) keeps the previous ring in service; the failure is logged
    once, and the load is retried at every poll until it succeeds.

    Use it in an application's lifespan::

        holder = KeyRingHolder(settings)
        await holder.start()   # loads the keystore, raises KeystoreError if it cannot
        try:
            ...                # handlers read holder.ring
        finally:
            await holder.stop()

    or as ``async with KeyRingHolder(settings) as holder: ...``.
    """

    __slots__ = ("_failure", "_identity", "_ring", "_source", "_task")

    def __init__(self, settings: Settings, *, interval: float = POLL_INTERVAL_SECONDS) -> None:
        self._source: KeySource = (
            DatabaseSource(settings, interval)
            if in_database(settings)
            else DirectorySource(settings, interval)
        )
        self._ring: KeyRing | None = None
        self._identity: Hashable | None = None
        self._failure: str | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def ring(self) -> KeyRing:
        """The ring in service; read it per request, never keep it."""
        if self._ring is None:
            raise RuntimeError("KeyRingHolder.start() has not loaded the keystore yet")
        return self._ring

    async def start(self) -> None:
        """Load the keystore and start watching it.

        Raises:
            KeystoreError: the keystore cannot be loaded; there is no ring to serve with.
        """
        if self._task is not None:
            raise RuntimeError("KeyRingHolder.start() was already called")
        try:
            identity: Hashable | None = await self._source.identity()
        except KeystoreError:
            identity = None  # the load below raises the precise KeystoreError
        try:
            self._ring = await self._source.load()
        except BaseException:
            await self._source.close()
            raise
        self._identity = identity
        self._task = asyncio.create_task(
            self._source.watch(self._refresh_safely), name="gateway-keyring-watcher"
        )

    async def stop(self) -> None:
        """Stop watching; the last ring stays readable."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    await self._source.close()
                    raise  # the caller of stop() is being cancelled: let it be
            await self._source.close()

    async def refresh(self) -> bool:
        """Check the keystore's identity once and load the keystore if it changed.

        Returns:
            True when a new ring was put in service.
        """
        try:
            identity = await self._source.identity()
        except KeystoreError as exc:
            self._warn(exc.message)
            return False
        if identity == self._identity:
            return False
        try:
            ring = await self._source.load()
        except KeystoreError as exc:
            # _identity is left as it was, so the next poll tries again.
            self._warn(exc.message)
            return False
        self._ring, self._identity = ring, identity
        if self._failure is not None:
            logger.info("the keystore loads again")
            self._failure = None
        logger.info("keys reloaded: signing with %s", ring.current_kid)
        return True

    async def __aenter__(self) -> KeyRingHolder:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _refresh_safely(self) -> None:
        try:
            await self.refresh()
        except Exception:
            # The watcher must outlive anything a damaged keystore can throw at it: the
            # gateway keeps serving with the ring it has.
            logger.exception("unexpected error while reloading the keystore")

    def _warn(self, message: str) -> None:
        if message != self._failure:
            logger.warning("keeping the previous signing keys: %s", message)
            self._failure = message
