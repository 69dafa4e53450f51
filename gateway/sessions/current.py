"""Requests made with an access token: who is calling, and /auth/me."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.sessions._identity import (
    MembershipView,
    identity_of,
    memberships_of,
)
from gateway.sessions.errors import SessionExpired, SessionRevoked, UserSuspended
from gateway.settings import Settings
from gateway.store import Session, User, utcnow
from gateway.tokens import KeyRing, verify_access_token


@dataclass(frozen=True, slots=True)
class Caller:
    claims: dict[str, Any]
    session: Session
    user: User


def verify_access(token: str, *, ring: KeyRing, settings: Settings) -> dict[str, Any]:
    """Verify an access token against this gateway's issuer, audience and allowed roles."""
    return verify_access_token(
        ring,
        token,
        issuer=settings.issuer,
        audience=settings.audience,
        allowed_roles=settings.allowed_roles,
    )


async def authenticate(
    db: AsyncSession, *, token: str, ring: KeyRing, settings: Settings, lock: bool = False
) -> Caller:
    """Verify an access token and check, in the store, that its session and user are still good.

    The signature alone would keep a token working until it expires; reading the session makes
    logout and suspension take effect at once. ``gateway explain`` checks tokens with it too.
    """
    claims = verify_access(token, ring=ring, settings=settings)
    session_id = claims.get("sid")
    session = (
        await db.get(Session, session_id, with_for_update=lock)
        if isinstance(session_id, str)
        else None
    )
    if session is None or str(session.user_id) != claims.get("sub"):
        raise SessionRevoked("This session has ended; sign in again.")
    user = await db.get(User, session.user_id)
    if user is None:
        raise SessionRevoked("This session has ended; sign in again.")
    # Suspension first: it also revokes the user's sessions, and the answer should say why.
    if user.status != "active":
        raise UserSuspended("This account is suspended.")
    if session.revoked_at is not None:
        raise SessionRevoked("This session has ended; sign in again.")
    if session.expires_at <= utcnow():
        raise SessionExpired("This session has expired; sign in again.")
    return Caller(claims=claims, session=session, user=user)


@dataclass(frozen=True, slots=True)
class Me:
    user: User
    memberships: list[MembershipView]
    current: MembershipView | None
    session: Session


async def describe_caller(db: AsyncSession, caller: Caller) -> Me:
    memberships = await memberships_of(db, caller.user.id)
    current = next(
        (m for m in memberships if m.organization_id == caller.session.organization_id), None
    )
    return Me(user=caller.user, memberships=memberships, current=current, session=caller.session)


__all__ = [
    "Caller",
    "Me",
    "authenticate",
    "describe_caller",
    "describe_token_holder",
    "identity_of",
    "verify_access",
]


async def describe_token_holder(
    store: async_sessionmaker[AsyncSession], *, access_token: str, ring: KeyRing, settings: Settings
) -> Me:
    """``/auth/me``: the caller behind an access token, checked like any request with it."""
    async with store() as db:
        caller = await authenticate(db, token=access_token, ring=ring, settings=settings)
        return await describe_caller(db, caller)
