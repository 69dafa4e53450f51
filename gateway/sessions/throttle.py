"""Per-account sign-in throttling, kept in the store so that every replica sees every failure."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import case, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.sessions.errors import TooManyAttempts
from gateway.settings import Settings
from gateway.store.models import LoginThrottle

# Lockouts further apart than this start the back-off over.
_LOCKOUT_MEMORY = timedelta(hours=24)


async def check_not_locked(db: AsyncSession, email_key: str, *, now: datetime) -> None:
    """Raise 429 while the account is locked, whatever password comes with the attempt."""
    locked_until = await db.scalar(
        select(LoginThrottle.locked_until).where(LoginThrottle.email_key == email_key)
    )
    if locked_until is not None and locked_until > now:
        raise TooManyAttempts(
            "Too many failed sign-ins for this account; try again later.",
            retry_after=max(1, math.ceil((locked_until - now).total_seconds())),
        )


async def record_failure(
    db: AsyncSession, email_key: str, *, now: datetime, settings: Settings
) -> bool:
    """Count one failed sign-in; lock the account when the window fills. True when it locked.

    The count is an atomic upsert, so concurrent failures from several replicas are never lost.
    Each further lockout within a day doubles in length, up to GATEWAY_LOGIN_LOCKOUT_MAX.
    """
    window_start = now - timedelta(seconds=settings.login_failure_window)
    insert = postgresql.insert if db.get_bind().dialect.name == "postgresql" else sqlite.insert
    expired = LoginThrottle.window_started_at < window_start
    upsert = (
        insert(LoginThrottle)
        .values(email_key=email_key, failures=1, window_started_at=now, lockouts=0)
        .on_conflict_do_update(
            index_elements=[LoginThrottle.email_key],
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
    if locked_until is not None and locked_until > now:
        # Failures that were in flight when the lock fell neither extend nor escalate it:
        # otherwise one burst of guesses would climb straight to the longest lockout.
        return False
    if failures < settings.login_max_failures:
        return False
    if last_lockout_at is None or now - last_lockout_at > _LOCKOUT_MEMORY:
        lockouts = 0
    seconds = min(settings.login_lockout * 2**lockouts, settings.login_lockout_max)
    await db.execute(
        update(LoginThrottle)
        .where(LoginThrottle.email_key == email_key)
        .values(
            failures=0,
            window_started_at=now,
            locked_until=now + timedelta(seconds=seconds),
            lockouts=lockouts + 1,
            last_lockout_at=now,
        )
    )
    return True


async def clear_failures(db: AsyncSession, email_key: str) -> None:
    """A successful sign-in forgets earlier failures (the back-off memory stays)."""
    await db.execute(
        update(LoginThrottle)
        .where(LoginThrottle.email_key == email_key, LoginThrottle.failures > 0)
        .values(failures=0)
    )
