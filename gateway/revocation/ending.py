"""The write side of revocation: ending one session, its replacements, or all of a user's,
and a user's suspension or return.

Every change is announced to the other processes (the feed) and noted for this process's own
read side, which learns it as the transaction commits, before the caller answers anyone.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.revocation._own_writes import EndedSession, UserStanding, note
from gateway.revocation.feed import announce_revocation
from gateway.store import Session


async def revoke_session(db: AsyncSession, session: Session, *, reason: str, now: datetime) -> None:
    """Mark one session revoked (idempotent: the first reason is kept)."""
    if session.revoked_at is None:
        session.revoked_at = now
        session.revoke_reason = reason
        await db.flush()
        await announce_revocation(db)
        note(
            db,
            EndedSession(session_id=session.id, revoked_at=now, expires_at=session.expires_at),
        )


async def announce_user_standing(db: AsyncSession, user_id: int, *, suspended: bool) -> None:
    """Have every gateway process refuse (``suspended``) or accept again the user's tokens,
    when the caller's transaction, which wrote the user's new status, commits."""
    await announce_revocation(db)
    note(db, UserStanding(user_id=str(user_id), suspended=suspended))


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
    db: AsyncSession, user_id: int, *, reason: str, now: datetime, keep: str | None = None
) -> list[str]:
    """Revoke every live session of a user but ``keep`` (when given); returns their ids."""
    live = [Session.user_id == user_id, Session.revoked_at.is_(None)]
    if keep is not None:
        live.append(Session.id != keep)
    sessions = (await db.scalars(select(Session).where(*live).with_for_update())).all()
    for session in sessions:
        await revoke_session(db, session, reason=reason, now=now)
    return [session.id for session in sessions]


async def revoke_organization_sessions(
    db: AsyncSession, *, user_id: int, organization_id: int, reason: str, now: datetime
) -> list[str]:
    """Revoke the user's live sessions that act for one organization; returns their ids.

    Their sessions in other organizations (and ones in none) stay: removing a member of one
    organization, or lowering their role in it, must not sign them out of the others.
    """
    sessions = (
        await db.scalars(
            select(Session)
            .where(
                Session.user_id == user_id,
                Session.organization_id == organization_id,
                Session.revoked_at.is_(None),
            )
            .with_for_update()
        )
    ).all()
    for session in sessions:
        await revoke_session(db, session, reason=reason, now=now)
    return [session.id for session in sessions]
