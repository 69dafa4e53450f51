"""Signing out: ending this session, or every session of its user."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.revocation import revoke_session, revoke_user_sessions
from gateway.sessions._refresh_tokens import hash_refresh_token, looks_like_refresh_token
from gateway.sessions.current import authenticate
from gateway.settings import Settings
from gateway.store import RefreshToken, Session, record_event, utcnow
from gateway.tokens import KeyRing


async def session_of_refresh_token(db: AsyncSession, refresh_token: str) -> Session | None:
    """The session a refresh token belongs to (used or not), for logout by refresh cookie."""
    if not looks_like_refresh_token(refresh_token):
        return None
    session_id = await db.scalar(
        select(RefreshToken.session_id).where(
            RefreshToken.token_hash == hash_refresh_token(refresh_token)
        )
    )
    return await db.get(Session, session_id, with_for_update=True) if session_id else None


async def logout(
    db: AsyncSession, session: Session, *, scope: str, ip: str | None, now: datetime
) -> None:
    """``local`` ends this session; ``global`` every session of its user; ``others`` every
    one but this (GoTrue's three scopes)."""
    if scope == "global":
        ended = await revoke_user_sessions(db, session.user_id, reason="logout_global", now=now)
    elif scope == "others":
        ended = await revoke_user_sessions(
            db, session.user_id, reason="logout_others", now=now, keep=session.id
        )
    else:
        await revoke_session(db, session, reason="logout", now=now)
        ended = [session.id]
    record_event(
        db, "logout", user_id=session.user_id, ip=ip, details={"scope": scope, "sessions": ended}
    )


async def logout_caller(
    store: async_sessionmaker[AsyncSession],
    *,
    access_token: str,
    ring: KeyRing,
    settings: Settings,
    scope: str,
    ip: str | None,
) -> None:
    """Sign out the holder of an access token (refused like any request with a bad token)."""
    async with store.begin() as db:
        caller = await authenticate(db, token=access_token, ring=ring, settings=settings)
        await logout(db, caller.session, scope=scope, ip=ip, now=utcnow())


async def logout_by_refresh_token(
    store: async_sessionmaker[AsyncSession], *, refresh_token: str, scope: str, ip: str | None
) -> None:
    """Sign out with only the refresh token: the access cookie expires long before the refresh
    cookie, and a browser signing out after an hour must still end its session. An unknown or
    already ended session is not an error: signing out twice has the same outcome."""
    async with store.begin() as db:
        session = await session_of_refresh_token(db, refresh_token)
        if session is not None and session.revoked_at is None:
            await logout(db, session, scope=scope, ip=ip, now=utcnow())
