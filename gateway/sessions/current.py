"""Requests made with an access token: who is calling, /auth/me, switching organization."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.audit import record_event
from gateway.errors import GatewayError
from gateway.runtime import Runtime
from gateway.sessions.errors import SessionExpired, SessionRevoked, UserSuspended
from gateway.sessions.identity import (
    MembershipView,
    choose_membership,
    identity_of,
    memberships_of,
)
from gateway.sessions.issuing import ClientInfo, IssuedTokens, issue_tokens, start_session
from gateway.sessions.revocation import revoke_session
from gateway.store.models import Session, User, utcnow
from gateway.tokens.signing import verify_access_token


@dataclass(frozen=True, slots=True)
class Caller:
    claims: dict[str, Any]
    session: Session
    user: User


async def authenticate(
    db: AsyncSession, runtime: Runtime, token: str, *, lock: bool = False
) -> Caller:
    """Verify an access token and check, in the store, that its session and user are still good.

    The signature alone would keep a token working until it expires; reading the session makes
    logout and suspension take effect at once.
    """
    settings = runtime.settings
    claims = verify_access_token(
        runtime.keys.ring,
        token,
        issuer=settings.issuer,
        audience=settings.audience,
        allowed_roles=settings.allowed_roles,
    )
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


async def switch_organization(
    runtime: Runtime, *, token: str, organization_id: int, client: ClientInfo
) -> IssuedTokens:
    """A new session in another organization of the caller's; the old session is ended.

    Replacing the session (rather than re-scoping it) means tokens minted for the previous
    organization stop working at once, so one session never speaks for two organizations. The
    replacement keeps the old session's expiry, and the old session records it, so reuse of an
    old refresh token ends the replacement too (see refresh.py).
    """
    now = utcnow()
    refusal: GatewayError | None = None
    async with runtime.sessions.begin() as db:
        caller = await authenticate(db, runtime, token, lock=True)
        try:
            membership = choose_membership(
                caller.user, await memberships_of(db, caller.user.id), organization_id
            )
        except GatewayError as exc:
            record_event(
                db,
                "switch_refused",
                user_id=caller.user.id,
                ip=client.ip,
                details={"reason": exc.code},
            )
            refusal = exc
        else:
            assert membership is not None
            session, refresh_token, identity = await start_session(
                db,
                runtime,
                user=caller.user,
                membership=membership,
                client=client,
                now=now,
                event="organization_switched",
                # The new session ends when the old one would have: switching is not a way to
                # turn one access token into a fresh 30-day session.
                expires_at=caller.session.expires_at,
            )
            caller.session.replaced_by = session.id
            await revoke_session(db, caller.session, reason="switched_organization", now=now)
    if refusal is not None:
        raise refusal
    return issue_tokens(
        runtime,
        identity=identity,
        session_id=session.id,
        session_expires_at=session.expires_at,
        refresh_token=refresh_token,
    )


__all__ = ["Caller", "Me", "authenticate", "describe_caller", "identity_of", "switch_organization"]
