"""Keeps a running gateway's :class:`KeyRing` in step with the keystore, without a restart."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Final

from gateway.settings import Settings
from gateway.tokens.errors import KeystoreError
from gateway.tokens.keystore import MANIFEST_NAME, keys_directory
from gateway.tokens.signing import KeyRing, load_keyring

logger = logging.getLogger(__name__)

#: How often ``manifest.json`` is looked at: a rotation is picked up within about this long
#: (plus the time to load the keys), well inside the 2 s the operations guide promises.
POLL_INTERVAL_SECONDS: Final = 0.5

_FileIdentity = tuple[int, int, int, int]


class KeyRingHolder:
    """Holds the current :class:`KeyRing` and replaces it when ``manifest.json`` changes.

    A background task stats the manifest every :data:`POLL_INTERVAL_SECONDS`; when its device,
    inode, size or mtime differ (every write replaces the file, so the inode always does), the
    keystore is loaded in a worker thread and the new ring is swapped in. A keystore that cannot
    be loaded (half-written, unreadable, a key missing) keeps the previous ring in service; the
    failure is logged once, and the load is retried at every poll until it succeeds.

    Use it in an application's lifespan::

        holder = KeyRingHolder(settings)
        await holder.start()   # loads the keystore, raises KeystoreError if it cannot
        try:
            ...                # handlers read holder.ring
        finally:
            await holder.stop()

    or as ``async with KeyRingHolder(settings) as holder: ...``.
    """

    __slots__ = ("_failure", "_identity", "_interval", "_ring", "_settings", "_task")

    def __init__(self, settings: Settings, *, interval: float = POLL_INTERVAL_SECONDS) -> None:
        self._settings = settings
        self._interval = interval
        self._ring: KeyRing | None = None
        self._identity: _FileIdentity | None = None
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
            identity: _FileIdentity | None = self._manifest_identity()
        except OSError:
            identity = None  # load_keyring below raises the precise KeystoreError
        self._ring = await asyncio.to_thread(load_keyring, self._settings)
        self._identity = identity
        self._task = asyncio.create_task(self._watch(), name="gateway-keyring-watcher")

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
                    raise  # the caller of stop() is being cancelled: let it be

    async def refresh(self) -> bool:
        """Check the manifest once and load the keystore if it changed.

        Returns:
            True when a new ring was put in service.
        """
        try:
            identity = self._manifest_identity()
        except OSError as exc:
            self._warn(f"cannot stat {MANIFEST_NAME}: {exc.strerror}")
            return False
        if identity == self._identity:
            return False
        try:
            ring = await asyncio.to_thread(load_keyring, self._settings)
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

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except Exception:
                # The watcher must outlive anything a damaged keystore can throw at it: the
                # gateway keeps serving with the ring it has.
                logger.exception("unexpected error while reloading the keystore")

    def _manifest_identity(self) -> _FileIdentity:
        status = os.stat(keys_directory(self._settings) / MANIFEST_NAME)
        return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)

    def _warn(self, message: str) -> None:
        if message != self._failure:
            logger.warning("keeping the previous signing keys: %s", message)
            self._failure = message
