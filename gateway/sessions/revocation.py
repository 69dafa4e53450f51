"""Ending sessions: logout (one or all), reuse detection, suspension."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit import record_event
from gateway.proxy.revocation import announce_revocation
from gateway.sessions.refresh_tokens import hash_refresh_token, looks_like_refresh_token
from gateway.store.models import RefreshToken, Session


async def revoke_session(db: AsyncSession, session: Session, *, reason: str, now: datetime) -> None:
    """Mark one session revoked (idempotent: the first reason is kept)."""
    if session.revoked_at is None:
        session.revoked_at = now
        session.revoke_reason = reason
        await db.flush()
        await announce_revocation(db)


async def revoke_replacements(db: AsyncSession, session: Session, *, now: datetime) -> list[str]:
    """Revoke every session that replaced ``session`` (switch-organization), transitively."""
    ended: list[str] = []
    replacement_id = session.replaced_by
    while replacement_id is not None and len(ended) < 1000:
        replacement = await db.get(Session, replacement_id, with_for_update=True)
        if replacement is None:
            break
        await revoke_session(db, replacement, reason="refresh_token_reused", now=now)
        ended.append(replacement.id)
        replacement_id = replacement.replaced_by
    return ended


async def revoke_user_sessions(
    db: AsyncSession, user_id: int, *, reason: str, now: datetime
) -> list[str]:
    """Revoke every live session of a user; returns their ids."""
    sessions = (
        await db.scalars(
            select(Session)
            .where(Session.user_id == user_id, Session.revoked_at.is_(None))
            .with_for_update()
        )
    ).all()
    for session in sessions:
        await revoke_session(db, session, reason=reason, now=now)
    return [session.id for session in sessions]


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
