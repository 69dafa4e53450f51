"""Sign-in throttling, kept in the store so that every replica sees every failure.

Two counters per email (docs/auth.md, "Throttling", gives the reasoning):

- the hard lock, per (email, client address; IPv6 by /64): GATEWAY_LOGIN_MAX_FAILURES failures
  lock that address out of that email, doubling up to GATEWAY_LOGIN_LOCKOUT_MAX. Brute force
  from one address is bounded, and a stranger elsewhere cannot lock the owner out with it;
- the ceiling, per email over every address: GATEWAY_LOGIN_EMAIL_MAX_FAILURES failures within
  the window slow a spray from many addresses to that many guesses per window. It holds back
  every address except those that signed in to the email in the last
  GATEWAY_LOGIN_KNOWN_ADDRESS_TTL seconds, so the owner's usual networks keep working.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from datetime import datetime, timedelta

from sqlalchemy import and_, case, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.sessions.errors import TooManyAttempts
from gateway.settings import Settings
from gateway.store.models import LoginKnownAddress, LoginThrottle

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


async def check_not_locked(
    db: AsyncSession, email_key: str, address: str, *, now: datetime, settings: Settings
) -> None:
    """Raise 429 while this address is locked out of this email, whatever the password.

    The same two look-ups run for every attempt, for emails with and without an account, so
    neither the answer nor its timing tells them apart.
    """
    locks = dict(
        (
            await db.execute(
                select(LoginThrottle.client_key, LoginThrottle.locked_until).where(
                    LoginThrottle.email_key == email_key,
                    LoginThrottle.client_key.in_((address, EVERY_ADDRESS)),
                )
            )
        ).all()
    )
    own, ceiling = locks.get(address), locks.get(EVERY_ADDRESS)
    if own is not None and own > now:
        raise TooManyAttempts(_MESSAGE, retry_after=_retry_after(own, now))
    if (
        ceiling is not None
        and ceiling > now
        and not await _is_known(db, email_key, address, now=now, settings=settings)
    ):
        raise TooManyAttempts(_MESSAGE, retry_after=_retry_after(ceiling, now))


async def _is_known(
    db: AsyncSession, email_key: str, address: str, *, now: datetime, settings: Settings
) -> bool:
    last = await db.scalar(
        select(LoginKnownAddress.last_success_at).where(
            LoginKnownAddress.email_key == email_key, LoginKnownAddress.client_key == address
        )
    )
    return last is not None and now - last <= timedelta(seconds=settings.login_known_address_ttl)


async def record_failure(
    db: AsyncSession, email_key: str, address: str, *, now: datetime, settings: Settings
) -> bool:
    """Count one failed sign-in on both counters; True when either of them locked.

    Each count is an atomic upsert, so concurrent failures from several replicas are never lost.
    """
    await _forget_idle(db, email_key, now=now, settings=settings)
    failures, lockouts, last_lockout_at, locked_until = await _count(
        db, email_key, address, now=now, settings=settings
    )
    locked = False
    # Failures that were in flight when a lock fell neither extend nor escalate it: otherwise
    # one burst of guesses would climb straight to the longest lockout.
    if (locked_until is None or locked_until <= now) and failures >= settings.login_max_failures:
        if last_lockout_at is None or now - last_lockout_at > _LOCKOUT_MEMORY:
            lockouts = 0
        seconds = min(settings.login_lockout * 2**lockouts, settings.login_lockout_max)
        await _lock(db, email_key, address, now=now, seconds=seconds, lockouts=lockouts + 1)
        locked = True
    failures, lockouts, _, locked_until = await _count(
        db, email_key, EVERY_ADDRESS, now=now, settings=settings
    )
    if (
        locked_until is None or locked_until <= now
    ) and failures >= settings.login_email_max_failures:
        # The ceiling does not escalate: it slows a spray to a fixed rate and no more.
        await _lock(
            db,
            email_key,
            EVERY_ADDRESS,
            now=now,
            seconds=settings.login_failure_window,
            lockouts=lockouts + 1,
        )
        locked = True
    return locked


async def _count(
    db: AsyncSession, email_key: str, address: str, *, now: datetime, settings: Settings
) -> tuple[int, int, datetime | None, datetime | None]:
    window_start = now - timedelta(seconds=settings.login_failure_window)
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    expired = LoginThrottle.window_started_at < window_start
    upsert = (
        insert(LoginThrottle)
        .values(email_key=email_key, client_key=address, failures=1, window_started_at=now)
        .values(lockouts=0)
        .on_conflict_do_update(
            index_elements=[LoginThrottle.email_key, LoginThrottle.client_key],
            set_={
                "failures": case((expired, 1), else_=LoginThrottle.failures + 1),
                "window_started_at": case((expired, now), else_=LoginThrottle.window_started_at),
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


async def _lock(
    db: AsyncSession, email_key: str, address: str, *, now: datetime, seconds: int, lockouts: int
) -> None:
    await db.execute(
        update(LoginThrottle)
        .where(LoginThrottle.email_key == email_key, LoginThrottle.client_key == address)
        .values(
            failures=0,
            window_started_at=now,
            locked_until=now + timedelta(seconds=seconds),
            lockouts=lockouts,
            last_lockout_at=now,
        )
    )


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

    The email's ceiling is left alone: the owner signing in does not buy a spray new guesses.
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
