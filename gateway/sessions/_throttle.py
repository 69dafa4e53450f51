"""Sign-in throttling, kept in the store so that every replica sees every failure.

Two counters per email (docs/auth.md, "Throttling", gives the reasoning):

- the hard lock, per (email, client address; IPv6 by /64): GATEWAY_LOGIN_MAX_FAILURES failures
  lock that address out of that email, doubling up to GATEWAY_LOGIN_LOCKOUT_MAX. Brute force
  from one address is bounded, and a stranger elsewhere cannot lock the owner out with it;
- the ceiling, per email over every address: GATEWAY_LOGIN_EMAIL_MAX_FAILURES failures within
  the window slow a spray from many addresses to that many guesses per window. It holds back
  every address except those that signed in to the email in the last
  GATEWAY_LOGIN_KNOWN_ADDRESS_TTL seconds, so the owner's usual networks keep working.

An attempt is counted on both before its password is verified (``reserve_attempt``), so that
concurrent attempts cannot all pass a check made before any of them failed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, delete, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.sessions.errors import TooManyAttempts
from gateway.settings import Settings
from gateway.store import LoginKnownAddress, LoginThrottle, UTCDateTime

# The client key of the per-email ceiling row; never a client key of an address.
EVERY_ADDRESS = "*"
# Lockouts further apart than this start the back-off over.
_LOCKOUT_MEMORY = timedelta(hours=24)
_MESSAGE = "Too many failed sign-ins for this account; try again later."


def client_key(ip: str | None) -> str:
    """The address failures are counted under: IPv4 as it is, IPv6 by its /64.

    One IPv6 subscriber is routinely given a whole /64 (RFC 6177), so counting single IPv6
    addresses would give an attacker 2^64 fresh budgets. What is not an IP address (no peer, a
    Unix socket) gets a digest, so that its bytes never reach the store.
    """
    if ip is None:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "peer:" + hashlib.sha256(ip.encode("utf-8", "replace")).hexdigest()[:40]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _retry_after(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


def _is_locked(now: datetime) -> ColumnElement[bool]:
    return and_(LoginThrottle.locked_until.is_not(None), LoginThrottle.locked_until > now)


def _lockout_level(lockouts: int, last_lockout_at: datetime | None, now: datetime) -> int:
    """How many lockouts the next one follows; lockouts older than a day are forgotten."""
    if last_lockout_at is None or now - last_lockout_at > _LOCKOUT_MEMORY:
        return 0
    return lockouts


def _lockout_seconds(level: int, settings: Settings) -> int:
    return int(min(settings.login_lockout * 2**level, settings.login_lockout_max))


async def reserve_attempt(
    db: AsyncSession, email_key: str, address: str, *, now: datetime, settings: Settings
) -> None:
    """Count this attempt as a failure before its password is verified, or raise 429.

    The attempt is reserved on both counters at once, atomically: each is an upsert that adds
    one and returns the new count (a row lock on PostgreSQL, serialised writes on SQLite), so
    of any number of concurrent attempts exactly the budget's worth are admitted and the rest
    are refused without a verification. Counting after the verification let a whole burst pass
    the check before its first failure was recorded. The caller runs this in a transaction of
    its own and lets the refusal roll it back, so refused attempts count for nothing; a success
    later gives the reservation back (``clear_failures``).

    The same statements run for every attempt, for emails with and without an account, so
    neither the answer nor its timing tells them apart.
    """
    await _forget_idle(db, email_key, now=now, settings=settings)
    failures, lockouts, last_lockout_at, locked_until = await _reserve(
        db, email_key, address, now=now, settings=settings
    )
    if locked_until is not None and locked_until > now:
        raise TooManyAttempts(_MESSAGE, retry_after=_retry_after(locked_until, now))
    if failures > settings.login_max_failures:
        # The budget is taken by attempts still being verified; their failures lock the address.
        seconds = _lockout_seconds(_lockout_level(lockouts, last_lockout_at, now), settings)
        raise TooManyAttempts(_MESSAGE, retry_after=seconds)
    failures, _, _, locked_until = await _reserve(
        db, email_key, EVERY_ADDRESS, now=now, settings=settings
    )
    ceiling_locked = locked_until is not None and locked_until > now
    if not ceiling_locked and failures <= settings.login_email_max_failures:
        return
    if await _is_known(db, email_key, address, now=now, settings=settings):
        return
    if locked_until is not None and ceiling_locked:
        raise TooManyAttempts(_MESSAGE, retry_after=_retry_after(locked_until, now))
    raise TooManyAttempts(_MESSAGE, retry_after=settings.login_failure_window)


async def _is_known(
    db: AsyncSession, email_key: str, address: str, *, now: datetime, settings: Settings
) -> bool:
    last = await db.scalar(
        select(LoginKnownAddress.last_success_at).where(
            LoginKnownAddress.email_key == email_key, LoginKnownAddress.client_key == address
        )
    )
    return last is not None and now - last <= timedelta(seconds=settings.login_known_address_ttl)


async def _reserve(
    db: AsyncSession, email_key: str, address: str, *, now: datetime, settings: Settings
) -> tuple[int, int, datetime | None, datetime | None]:
    """Add one to a counter unless it is locked (a window that passed starts over at one)."""
    window_start = now - timedelta(seconds=settings.login_failure_window)
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    locked = _is_locked(now)
    expired = LoginThrottle.window_started_at < window_start
    upsert = (
        insert(LoginThrottle)
        .values(email_key=email_key, client_key=address, failures=1, window_started_at=now)
        .values(lockouts=0)
        .on_conflict_do_update(
            index_elements=[LoginThrottle.email_key, LoginThrottle.client_key],
            set_={
                "failures": case(
                    (locked, LoginThrottle.failures),
                    (expired, 1),
                    else_=LoginThrottle.failures + 1,
                ),
                "window_started_at": case(
                    (and_(expired, ~locked), now), else_=LoginThrottle.window_started_at
                ),
            },
        )
        .returning(
            LoginThrottle.failures,
            LoginThrottle.lockouts,
            LoginThrottle.last_lockout_at,
            LoginThrottle.locked_until,
        )
    )
    failures, lockouts, last_lockout_at, locked_until = (await db.execute(upsert)).one()
    return failures, lockouts, last_lockout_at, locked_until


async def record_failure(
    db: AsyncSession, email_key: str, address: str, *, now: datetime, settings: Settings
) -> bool:
    """A reserved attempt failed: lock whichever counter has spent its budget; True if one did.

    The failure was counted when the attempt was reserved; here only the locks fall. Each lock
    is one conditional UPDATE, so of several failures finishing at once one locks and the
    others find the lock in force: failures that were in flight when a lock fell neither extend
    nor escalate it (otherwise one burst would climb straight to the longest lockout).
    """
    level = case(
        (
            or_(
                LoginThrottle.last_lockout_at.is_(None),
                LoginThrottle.last_lockout_at < now - _LOCKOUT_MEMORY,
            ),
            0,
        ),
        else_=LoginThrottle.lockouts,
    )
    own = await _lock_when_spent(
        db,
        email_key,
        address,
        now=now,
        limit=settings.login_max_failures,
        locked_until=_backed_off_until(level, now=now, settings=settings),
        lockouts=level + 1,
    )
    # The ceiling does not escalate: it slows a spray to a fixed rate and no more.
    ceiling = await _lock_when_spent(
        db,
        email_key,
        EVERY_ADDRESS,
        now=now,
        limit=settings.login_email_max_failures,
        locked_until=literal(now + timedelta(seconds=settings.login_failure_window), UTCDateTime()),
        lockouts=LoginThrottle.lockouts + 1,
    )
    return own or ceiling


def _backed_off_until(
    level: ColumnElement[int], *, now: datetime, settings: Settings
) -> ColumnElement[datetime]:
    """A lock's end as a CASE over the back-off's few levels: one statement decides and sets it.

    From the level where the back-off reaches GATEWAY_LOGIN_LOCKOUT_MAX it stays there.
    """
    levels: list[int] = []
    while _lockout_seconds(len(levels), settings) < settings.login_lockout_max:
        levels.append(len(levels))
    longest = literal(now + timedelta(seconds=settings.login_lockout_max), UTCDateTime())
    if not levels:
        # No level below the ceiling (GATEWAY_LOGIN_LOCKOUT >= GATEWAY_LOGIN_LOCKOUT_MAX): a
        # CASE with no WHEN is not SQL, and every lock is the longest one.
        return longest
    return case(
        *(
            (
                level == n,
                literal(now + timedelta(seconds=_lockout_seconds(n, settings)), UTCDateTime()),
            )
            for n in levels
        ),
        else_=longest,
    )


async def _lock_when_spent(
    db: AsyncSession,
    email_key: str,
    address: str,
    *,
    now: datetime,
    limit: int,
    locked_until: ColumnElement[datetime],
    lockouts: ColumnElement[int],
) -> bool:
    result = await db.execute(
        update(LoginThrottle)
        .where(
            LoginThrottle.email_key == email_key,
            LoginThrottle.client_key == address,
            LoginThrottle.failures >= limit,
            ~_is_locked(now),
        )
        .values(
            failures=0,
            window_started_at=now,
            locked_until=locked_until,
            lockouts=lockouts,
            last_lockout_at=now,
        )
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def _forget_idle(
    db: AsyncSession, email_key: str, *, now: datetime, settings: Settings
) -> None:
    """Drop this email's address rows that no longer count for anything.

    A spray from many addresses makes one row per address; a row whose window has passed, that
    holds no lock and whose last lockout is beyond the back-off memory is the same as no row.
    """
    window_start = now - timedelta(seconds=settings.login_failure_window)
    await db.execute(
        delete(LoginThrottle).where(
            LoginThrottle.email_key == email_key,
            LoginThrottle.client_key != EVERY_ADDRESS,
            LoginThrottle.window_started_at < window_start,
            or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= now),
            or_(
                LoginThrottle.last_lockout_at.is_(None),
                LoginThrottle.last_lockout_at < now - _LOCKOUT_MEMORY,
            ),
        )
    )


async def clear_failures(db: AsyncSession, email_key: str, address: str) -> None:
    """A successful sign-in forgets this address's failures (the back-off memory stays).

    On the email's ceiling it gives back only its own reservation: the owner signing in does
    not buy a spray new guesses.
    """
    await db.execute(
        update(LoginThrottle)
        .where(
            LoginThrottle.email_key == email_key,
            LoginThrottle.client_key == address,
            LoginThrottle.failures > 0,
        )
        .values(failures=0)
    )
    await db.execute(
        update(LoginThrottle)
        .where(
            LoginThrottle.email_key == email_key,
            LoginThrottle.client_key == EVERY_ADDRESS,
            LoginThrottle.failures > 0,
        )
        .values(failures=LoginThrottle.failures - 1)
    )


async def remember_address(
    db: AsyncSession, email_key: str, address: str, *, now: datetime, settings: Settings
) -> None:
    """Record a successful sign-in from ``address``; forget this email's expired addresses."""
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    await db.execute(
        insert(LoginKnownAddress)
        .values(email_key=email_key, client_key=address, last_success_at=now)
        .on_conflict_do_update(
            index_elements=[LoginKnownAddress.email_key, LoginKnownAddress.client_key],
            set_={"last_success_at": now},
        )
    )
    await db.execute(
        delete(LoginKnownAddress).where(
            and_(
                LoginKnownAddress.email_key == email_key,
                LoginKnownAddress.last_success_at
                < now - timedelta(seconds=settings.login_known_address_ttl),
            )
        )
    )
