"""Which sessions are revoked and which users suspended, known to every gateway process at once.

Access tokens are verified without the store; this set is what makes logout, reuse detection
and suspension take effect before the tokens expire. Changes arrive by ``LISTEN`` on PostgreSQL
(the transaction that revokes also ``NOTIFY``s, delivered on commit) with a periodic re-sync as
a safety net, and by polling twice a second on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

import asyncpg
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.postgrest.notify import asyncpg_dsn
from gateway.settings import Settings
from gateway.store.models import Session, User, utcnow

logger = logging.getLogger(__name__)

CHANNEL = "gateway_revocations"
POLL_SECONDS = 0.5
RESYNC_SECONDS = 5.0
_OVERLAP = timedelta(seconds=5)  # re-read a little of the past: commits land out of order


async def announce_revocation(db: AsyncSession) -> None:
    """Tell every gateway process to re-sync, when the caller's transaction commits."""
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class Revocations:
    __slots__ = (
        "_changed",
        "_sessions",
        "_settings",
        "_task",
        "_watermark",
        "revoked_sessions",
        "suspended_users",
    )

    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._settings = settings
        self._sessions = sessions
        self.revoked_sessions: set[str] = set()
        self.suspended_users: set[str] = set()  # as the token's "sub": the user id as a string
        self._watermark: datetime | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self.sync()
        except Exception:  # noqa: BLE001 - a store that is down now is retried by the loop
            logger.warning("revocations: store unreachable at start-up; retrying")
        self._task = asyncio.create_task(self._run(), name="gateway-revocations")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def sync(self) -> None:
        """Read sessions revoked since the last sync, and every suspended user."""
        now = utcnow()
        since = self._watermark - _OVERLAP if self._watermark else None
        async with self._sessions() as db:
            query = select(Session.id).where(
                Session.revoked_at.is_not(None), Session.expires_at > now
            )
            if since is not None:
                query = query.where(Session.revoked_at >= since)
            revoked = set((await db.scalars(query)).all())
            suspended = {
                str(user_id)
                for user_id in (await db.scalars(select(User.id).where(User.status != "active")))
            }
        self.revoked_sessions |= revoked
        self.suspended_users = suspended
        self._watermark = now

    async def _run(self) -> None:
        if self._settings.is_sqlite:
            while True:
                await self._wait_and_sync(POLL_SECONDS)
        else:
            await self._listen()

    async def _wait_and_sync(self, interval: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout=interval)
        self._changed.clear()
        try:
            await self.sync()
        except Exception:  # noqa: BLE001 - keep the last known state, try again
            logger.warning("revocations: re-sync failed; keeping the last known state")

    async def _listen(self) -> None:
        while True:
            connection = None
            try:
                connection = await asyncpg.connect(
                    asyncpg_dsn(self._settings.database_url), timeout=10
                )
                await connection.add_listener(CHANNEL, lambda *_: self._changed.set())
                with contextlib.suppress(Exception):  # e.g. a store not yet migrated
                    await self.sync()  # whatever was missed while not listening
                while not connection.is_closed():
                    await self._wait_and_sync(RESYNC_SECONDS)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                logger.warning("revocations: cannot LISTEN on the store; polling meanwhile")
                for _ in range(int(RESYNC_SECONDS / POLL_SECONDS)):
                    await self._wait_and_sync(POLL_SECONDS)
            finally:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close()
