"""Which sessions are revoked and which users suspended, known to every gateway process at once.

Access tokens are verified without the store; this feed is what makes logout, reuse detection
and suspension take effect before the tokens expire. No timing may lose a revocation, so the
feed never orders revocations by ``revoked_at``: that is the writer's clock, taken before its
transaction commits, and a transaction that commits late or a replica whose clock is slow
writes a ``revoked_at`` that lies behind what the feed has already read.

How it reads instead:

* **A full re-read** of every revocation whose tokens can still be alive (see
  :func:`alive_until`) at start-up, every ``GATEWAY_REVOCATION_RESYNC`` seconds, and on SQLite
  at every poll. It replaces what the process knew, so it also forgets what has expired.
* **An incremental read in commit order** on PostgreSQL. A trigger stamps each revocation with
  the id of its transaction (``sessions.revocation_mark``, migration ``9d2c4b6e8f10``) and
  NOTIFYs on commit. A sequence or a timestamp would not do: both are taken before commit, so
  a lower value can become visible after a higher one was read. A transaction id does, read
  against a snapshot's ``xmin``: every transaction below the xmin had finished when the snapshot
  was taken, so a read that starts after it sees them all. Each incremental read therefore
  fetches the rows whose mark is at least the xmin taken before the previous read; whatever
  committed late is still at or above that xmin, and nothing committed can fall below it
  unread. Long-running transactions only make the read overlap more.

Suspended users are few and are re-read in full at every read.

**This process's own writes** do not wait for a read: the transaction that ends a session or
changes a user's standing hands the change to the process's started :class:`Revocations` as it
commits (``_own_writes``), before the answer is sent. A read whose snapshot began before that
commit would overwrite it with an older picture, so what was learned after a read began is laid
over the read's result; once a later read has begun, the store answers for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

import asyncpg
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.revocation._own_writes import EndedSession, OwnWrite, attach, detach
from gateway.settings import Settings
from gateway.store import Session, User, asyncpg_dsn, utcnow
from gateway.tokens import LEEWAY_SECONDS

logger = logging.getLogger(__name__)

CHANNEL = "gateway_revocations"  # the migration's trigger NOTIFYs this channel too
POLL_SECONDS = 0.5
LISTEN_POLL_SECONDS = 5.0  # an incremental read even without a notification, while LISTENing
#: How far the writer's clock (``revoked_at``, the session's expiry) may lag the reader's before
#: a revoked session is forgotten too early. Gateways whose clocks disagree by more than the 30 s
#: token leeway already misjudge expiry (``gateway doctor`` checks the skew).
CLOCK_MARGIN = timedelta(minutes=5)

_XMIN = text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


def alive_until(*, revoked_at: datetime, expires_at: datetime, settings: Settings) -> datetime:
    """The last moment a token of a session revoked at ``revoked_at`` may still be accepted.

    No token is issued for a session after its revocation, and none outlives its session
    (``exp`` is capped at the session's expiry), so the last one expires at the earlier of the
    two; tokens are accepted :data:`LEEWAY_SECONDS` past ``exp``, and :data:`CLOCK_MARGIN`
    covers writers whose clock is behind.
    """
    last_exp = min(revoked_at + timedelta(seconds=settings.access_token_ttl), expires_at)
    return last_exp + timedelta(seconds=LEEWAY_SECONDS) + CLOCK_MARGIN


async def announce_revocation(db: AsyncSession) -> None:
    """Tell every gateway process to re-read, when the caller's transaction commits."""
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class Revocations:
    """The process's view of the feed; the mount reads ``revoked_sessions`` and
    ``suspended_users`` with ``in`` on every request. Once started, it also learns the
    process's own revocations as they commit (:meth:`learn`)."""

    __slots__ = (
        "_changed",
        "_clock",
        "_generation",
        "_last_full",
        "_learned_sessions",
        "_learned_users",
        "_lock",
        "_mark",
        "_on_read",
        "_sessions",
        "_settings",
        "_task",
        "revoked_sessions",
        "suspended_users",
    )

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: Callable[[], datetime] = utcnow,
        on_read: Callable[[], None] | None = None,
    ) -> None:
        """``on_read`` is called after each successful read of the store (the metrics' hook)."""
        self._settings = settings
        self._on_read = on_read
        self._sessions = sessions
        self._clock = clock
        self.revoked_sessions: dict[str, datetime] = {}  # session id → alive_until
        self.suspended_users: set[str] = set()  # as the token's "sub": the user id as a string
        self._mark: int | None = None  # PostgreSQL: the xmin taken before the last read
        self._last_full = float("-inf")
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # What this process committed itself, each with the number of the learn() that brought
        # it: kept over any read that began before (see the module doc).
        self._generation = 0
        self._learned_sessions: dict[str, tuple[int, datetime]] = {}  # id → (learn, alive_until)
        self._learned_users: dict[str, tuple[int, bool]] = {}  # "sub" → (learn, suspended)

    async def start(self) -> None:
        """Read the store, then keep reading it; from now on the process's own writes to the
        store this feed reads reach it at their commit."""
        attach(self._sessions, self)
        try:
            await self.resync()
        except Exception:  # noqa: BLE001 - a store that is down now is retried by the loop
            logger.warning("revocations: store unreachable at start-up; retrying")
        self._task = asyncio.create_task(self._run(), name="gateway-revocations")

    async def stop(self) -> None:
        detach(self._sessions, self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if _cancelled_from_outside():
                    raise  # the caller of stop() is being cancelled: let it be
            except Exception:  # noqa: BLE001, S110 - the loop logs its own failures
                pass

    async def resync(self) -> None:
        """Re-read every revocation whose tokens can still be alive, and forget the rest."""
        async with self._lock, self._sessions() as db:
            started = self._generation
            mark = await self._current_mark(db)
            now = self._clock()
            # The bounds use the index on revoked_at; alive_until then decides exactly.
            ttl = timedelta(seconds=self._settings.access_token_ttl)
            slack = timedelta(seconds=LEEWAY_SECONDS) + CLOCK_MARGIN
            rows = await db.execute(
                select(Session.id, Session.revoked_at, Session.expires_at).where(
                    Session.revoked_at.is_not(None),
                    Session.revoked_at > now - ttl - slack,
                    Session.expires_at > now - slack,
                )
            )
            revoked = dict(self._alive((row.id, row.revoked_at, row.expires_at) for row in rows))
            suspended = await _suspended_users(db)
        self._keep_learned(started, revoked, suspended)
        self.revoked_sessions = revoked  # built from live rows only: this is the pruning
        self.suspended_users = suspended
        self._mark = mark
        self._last_full = time.monotonic()
        if self._on_read is not None:
            self._on_read()

    async def sync(self) -> None:
        """Read what changed since the last read: in commit order on PostgreSQL (see above).

        SQLite has no transaction ids to order by; its store is one file on one machine, and
        a full re-read there costs one indexed range scan, so every read is a full one.
        """
        if self._settings.is_sqlite or self._mark is None:
            await self.resync()
            return
        async with self._lock, self._sessions() as db:
            started = self._generation
            mark = await self._current_mark(db)  # taken before the read: see the module doc
            rows = await db.execute(
                select(Session.id, Session.revoked_at, Session.expires_at).where(
                    Session.revocation_mark >= self._mark
                )
            )
            changed = list(self._alive((row.id, row.revoked_at, row.expires_at) for row in rows))
            suspended = await _suspended_users(db)
        # No pruning here: it walks the whole set, and the next full re-read drops the expired.
        self.revoked_sessions.update(changed)
        self._keep_learned(started, self.revoked_sessions, suspended)
        self.suspended_users = suspended
        self._mark = mark
        if self._on_read is not None:
            self._on_read()

    def learn(self, writes: Sequence[OwnWrite]) -> None:
        """Take in what this process has just committed: called inside the commit.

        The mount refuses an ended session's tokens (or serves an activated user again) from
        the next request on, without waiting for the feed's next read.
        """
        self._generation += 1
        now = self._clock()
        for write in writes:
            if isinstance(write, EndedSession):
                until = alive_until(
                    revoked_at=write.revoked_at,
                    expires_at=write.expires_at,
                    settings=self._settings,
                )
                if until > now:
                    self.revoked_sessions[write.session_id] = until
                    self._learned_sessions[write.session_id] = (self._generation, until)
            else:
                if write.suspended:
                    self.suspended_users.add(write.user_id)
                else:
                    self.suspended_users.discard(write.user_id)
                self._learned_users[write.user_id] = (self._generation, write.suspended)

    def prune(self) -> None:
        """Forget sessions whose every token has expired, so the set stops growing."""
        now = self._clock()
        expired = [sid for sid, until in self.revoked_sessions.items() if until <= now]
        for sid in expired:
            del self.revoked_sessions[sid]

    def _keep_learned(
        self, started: int, revoked: dict[str, datetime], suspended: set[str]
    ) -> None:
        """Lay what was learned after a read began (``started``) over the read's result.

        Its commit may have come after the read's snapshot; what was learned before the read
        began had committed before it, so the read holds it and it is let go.
        """
        self._learned_sessions = {
            sid: learned for sid, learned in self._learned_sessions.items() if learned[0] > started
        }
        for sid, (_, until) in self._learned_sessions.items():
            revoked[sid] = until
        self._learned_users = {
            sub: learned for sub, learned in self._learned_users.items() if learned[0] > started
        }
        for sub, (_, is_suspended) in self._learned_users.items():
            if is_suspended:
                suspended.add(sub)
            else:
                suspended.discard(sub)

    def _alive(
        self, rows: Iterable[tuple[str, datetime | None, datetime]]
    ) -> Iterable[tuple[str, datetime]]:
        now = self._clock()
        for sid, revoked_at, expires_at in rows:
            if revoked_at is None:
                continue
            until = alive_until(
                revoked_at=revoked_at, expires_at=expires_at, settings=self._settings
            )
            if until > now:
                yield sid, until

    async def _current_mark(self, db: AsyncSession) -> int | None:
        if self._settings.is_sqlite:
            return None
        mark = await db.scalar(_XMIN)
        return int(mark) if mark is not None else None

    async def _run(self) -> None:
        if self._settings.is_sqlite:
            while True:
                await self._wait_and_sync(POLL_SECONDS)
        else:
            await self._listen()

    async def _wait_and_sync(self, interval: float) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns a wake-up that
        # arrives with a cancel and swallows the cancel, and stop() then waits forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(interval):
                await self._changed.wait()
        self._changed.clear()
        try:
            if time.monotonic() - self._last_full >= self._settings.revocation_resync:
                await self.resync()
            else:
                await self.sync()
        except Exception:  # noqa: BLE001 - keep the last known state, try again
            logger.warning("revocations: re-read failed; keeping the last known state")

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
                    await self._wait_and_sync(LISTEN_POLL_SECONDS)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                logger.warning("revocations: cannot LISTEN on the store; polling meanwhile")
                for _ in range(int(LISTEN_POLL_SECONDS / POLL_SECONDS)):
                    await self._wait_and_sync(POLL_SECONDS)
            finally:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close()


def _cancelled_from_outside() -> bool:
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0


async def _suspended_users(db: AsyncSession) -> set[str]:
    suspended = await db.scalars(select(User.id).where(User.status != "active"))
    return {str(user_id) for user_id in suspended}
