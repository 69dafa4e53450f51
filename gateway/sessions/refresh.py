"""Refreshing: every refresh token is used once, and a second use ends the whole session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import GatewayError
from gateway.revocation.ending import revoke_replacements, revoke_session
from gateway.sessions.errors import (
    InvalidRefreshToken,
    RefreshTokenReused,
    SessionExpired,
    SessionRevoked,
    UserSuspended,
)
from gateway.sessions.identity import MembershipView, identity_of, memberships_of
from gateway.sessions.issuing import ClientInfo, IssuedTokens, issue_tokens
from gateway.sessions.refresh_tokens import (
    hash_refresh_token,
    looks_like_refresh_token,
    successor_of,
)
from gateway.sessions.services import SessionServices
from gateway.store.audit import record_event
from gateway.store.models import RefreshToken, Session, User, utcnow
from gateway.tokens.claims import Identity


@dataclass(frozen=True, slots=True)
class Held:
    """A refresh token's row, locked for this transaction, with its session and user."""

    row: RefreshToken
    session: Session
    user: User


async def hold_refresh_token(db: AsyncSession, refresh_token: str) -> Held:
    """Find and lock a refresh token's row (``SELECT … FOR UPDATE`` on PostgreSQL)."""
    if not looks_like_refresh_token(refresh_token):
        raise InvalidRefreshToken("The refresh token is not valid.")
    row = await db.scalar(
        select(RefreshToken)
        .where(RefreshToken.token_hash == hash_refresh_token(refresh_token))
        .with_for_update()
    )
    if row is None:
        raise InvalidRefreshToken("The refresh token is not valid.")
    session = await db.get(Session, row.session_id, with_for_update=True)
    assert session is not None
    user = await db.get(User, session.user_id)
    assert user is not None
    return Held(row=row, session=session, user=user)


async def refuse_unusable(
    db: AsyncSession, held: Held, *, now: datetime, client: ClientInfo
) -> GatewayError | None:
    """What refresh and switch-organization check before they spend a refresh token.

    Raises when nothing was written; returns the refusal when what was written (a revocation)
    must be committed before it is raised.
    """
    session, user = held.session, held.user
    if user.status != "active":
        # Said before "session revoked": suspension revokes the sessions too.
        await revoke_session(db, session, reason="user_suspended", now=now)
        return UserSuspended("This account is suspended.")
    if session.revoked_at is not None:
        if session.replaced_by is None:
            raise SessionRevoked("This session has ended; sign in again.")
        # A token of a session that switch-organization replaced, used or not, inside the grace
        # window or not: the switch spent the session's newest token, so whoever presents one
        # of its tokens holds a copy, and the replacement descends from it. Ending the
        # replacements is what keeps a thief from keeping the session while the owner is
        # logged out.
        ended = await revoke_replacements(db, session, now=now)
        record_event(
            db,
            "refresh_token_reused",
            user_id=user.id,
            ip=client.ip,
            details={"session_id": session.id, "sessions_ended": ended},
        )
        return RefreshTokenReused(
            "This refresh token was already used; the session has been ended."
        )
    if session.expires_at <= now:
        raise SessionExpired("This session has expired; sign in again.")
    return None


async def spend(db: AsyncSession, held: Held, *, now: datetime, successor_hash: str | None) -> bool:
    """Mark the token used; False when it was used before (the row is then re-read).

    A compare-and-set: on SQLite (no row locks) a concurrent use may have won.
    """
    if held.row.used_at is not None:
        return False
    marked = await db.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == held.row.token_hash, RefreshToken.used_at.is_(None))
        .values(used_at=now, successor_hash=successor_hash)
    )
    if marked.rowcount == 1:  # type: ignore[attr-defined]
        return True
    await db.refresh(held.row)
    return False


async def end_for_reuse(db: AsyncSession, held: Held, *, now: datetime, client: ClientInfo) -> None:
    """End the session of a reused token, and every session that replaced it.

    The session is read again first: on SQLite (no row locks) a switch-organization may have
    spent this token and replaced the session after it was read, and the replacement then
    descends from the reused token, so it ends too, as it does when the reuse comes second.
    """
    await db.refresh(held.session)
    ended = await revoke_replacements(db, held.session, now=now)
    await revoke_session(db, held.session, reason="refresh_token_reused", now=now)
    record_event(
        db,
        "refresh_token_reused",
        user_id=held.user.id,
        ip=client.ip,
        details={"session_id": held.session.id, "sessions_ended": ended},
    )


def in_grace(held: Held, *, now: datetime, grace: int) -> bool:
    used_at = held.row.used_at
    return used_at is not None and now - used_at <= timedelta(seconds=grace)


async def refresh(
    runtime: SessionServices, *, refresh_token: str, client: ClientInfo
) -> IssuedTokens:
    """Exchange a refresh token for a new pair.

    The token's row is locked (``SELECT … FOR UPDATE`` on PostgreSQL) and marked used with a
    compare-and-set, so concurrent refreshes of one token produce one successor. A token used a
    second time is either a client that lost a race (within GATEWAY_REFRESH_REUSE_GRACE seconds:
    it gets the same successor) or a stolen token being replayed (after that: the session is
    revoked, so the thief's and the victim's tokens all stop working; RFC 9700 section 4.14.2).
    The user's status and membership are read again, so suspension or removal ends the session.
    """
    if not looks_like_refresh_token(refresh_token):
        raise InvalidRefreshToken("The refresh token is not valid.")
    settings = runtime.settings
    now = utcnow()
    successor = successor_of(refresh_token, key=await runtime.refresh_key())
    successor_hash = hash_refresh_token(successor)
    identity: Identity | None = None

    async with runtime.store.begin() as db:
        held = await hold_refresh_token(db, refresh_token)
        session, user = held.session, held.user
        refusal = await refuse_unusable(db, held, now=now, client=client)
        first_use = False
        if refusal is None:
            first_use = await spend(db, held, now=now, successor_hash=successor_hash)
            if not first_use and not (
                in_grace(held, now=now, grace=settings.refresh_reuse_grace)
                and held.row.successor_hash == successor_hash
            ):
                await end_for_reuse(db, held, now=now, client=client)
                refusal = RefreshTokenReused(
                    "This refresh token was already used; the session has been ended."
                )

        if refusal is None:
            refusal, membership = await _still_allowed(db, session, user, now=now)
            if refusal is None:
                identity = identity_of(user, membership)
                if first_use:
                    db.add(RefreshToken(token_hash=successor_hash, session_id=session.id))
                    record_event(
                        db,
                        "token_refreshed",
                        user_id=user.id,
                        ip=client.ip,
                        details={"session_id": session.id},
                    )

    if refusal is not None:
        raise refusal
    assert identity is not None
    return issue_tokens(
        runtime,
        identity=identity,
        session_id=session.id,
        session_expires_at=session.expires_at,
        refresh_token=successor,
    )


async def _still_allowed(
    db: AsyncSession, session: Session, user: User, *, now: datetime
) -> tuple[GatewayError | None, MembershipView | None]:
    """Re-check what the session was granted on: an active user, a membership still held."""
    if user.status != "active":
        await revoke_session(db, session, reason="user_suspended", now=now)
        return UserSuspended("This account is suspended."), None
    membership = None
    if session.organization_id is not None:
        memberships = {m.organization_id: m for m in await memberships_of(db, user.id)}
        membership = memberships.get(session.organization_id)
        if membership is None:
            await revoke_session(db, session, reason="membership_removed", now=now)
            return SessionRevoked("You are no longer a member of this organization."), None
    return None, membership
