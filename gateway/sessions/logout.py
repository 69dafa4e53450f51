"""Signing out: ending this session, or every session of its user."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.revocation import revoke_session, revoke_user_sessions
from gateway.sessions._refresh_tokens import hash_refresh_token, looks_like_refresh_token
from gateway.store import RefreshToken, Session, record_event


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
    """``local`` ends this session; ``global`` ends every session of its user."""
    if scope == "global":
        ended = await revoke_user_sessions(db, session.user_id, reason="logout_global", now=now)
    else:
        await revoke_session(db, session, reason="logout", now=now)
        ended = [session.id]
    record_event(
        db, "logout", user_id=session.user_id, ip=ip, details={"scope": scope, "sessions": ended}
    )
