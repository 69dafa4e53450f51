"""Refreshing: every refresh token is used once, and a second use ends the whole session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import GatewayError
from gateway.revocation import revoke_replacements, revoke_session
from gateway.sessions._identity import identity_of, memberships_of
from gateway.sessions._refresh_decision import (
    Spend,
    Standing,
    TokenUse,
    held_membership,
    membership_removed,
    refresh_spend,
    reused,
    standing_of,
)
from gateway.sessions._refresh_tokens import (
    hash_refresh_token,
    looks_like_refresh_token,
    successor_of,
)
from gateway.sessions.errors import InvalidRefreshToken
from gateway.sessions.issuing import ClientInfo, Grant, IssuedTokens, TokenIssuer
from gateway.store import RefreshToken, Session, User, record_event, utcnow


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
    standing = standing_of(held.session, held.user, now=now)
    refusal = standing.refusal()
    if standing is Standing.USER_SUSPENDED:
        await revoke_session(db, held.session, reason="user_suspended", now=now)
    elif standing is Standing.REPLACED:
        # The replacement descends from the presented token: ending the replacements is what
        # keeps a thief from keeping the session while the owner is logged out.
        ended = await revoke_replacements(db, held.session, now=now)
        record_event(
            db,
            "refresh_token_reused",
            user_id=held.user.id,
            ip=client.ip,
            details={"session_id": held.session.id, "sessions_ended": ended},
        )
    elif refusal is not None:
        raise refusal
    return refusal


async def spend(
    db: AsyncSession, held: Held, *, now: datetime, successor_hash: str | None
) -> TokenUse:
    """Mark the token used, unless it was used before (the row is then re-read).

    A compare-and-set: on SQLite (no row locks) a concurrent use may have won.
    """
    row = held.row
    if row.used_at is None:
        marked = await db.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == row.token_hash, RefreshToken.used_at.is_(None))
            .values(used_at=now, successor_hash=successor_hash)
        )
        if marked.rowcount == 1:  # type: ignore[attr-defined]
            return TokenUse(spent_now=True, used_at=now, successor_hash=successor_hash)
        await db.refresh(row)
    return TokenUse(spent_now=False, used_at=row.used_at, successor_hash=row.successor_hash)


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


async def refresh(
    *,
    store: async_sessionmaker[AsyncSession],
    issuer: TokenIssuer,
    successor_key: Callable[[], Awaitable[bytes]],
    reuse_grace: int,
    refresh_token: str,
    client: ClientInfo,
) -> IssuedTokens:
    """Exchange a refresh token for a new pair.

    The token's row is locked (``SELECT … FOR UPDATE`` on PostgreSQL) and marked used with a
    compare-and-set, so concurrent refreshes of one token produce one successor. A token used a
    second time is either a client that lost a race (within GATEWAY_REFRESH_REUSE_GRACE seconds:
    it gets the same successor) or a stolen token being replayed (after that: the session is
    revoked, so the thief's and the victim's tokens all stop working; RFC 9700 section 4.14.2).
    The user's status and membership are read again, so suspension or removal ends the session.

    ``successor_key`` gives the server secret successors are derived under; it is asked for
    only once the token has the shape of one.
    """
    if not looks_like_refresh_token(refresh_token):
        raise InvalidRefreshToken("The refresh token is not valid.")
    now = utcnow()
    successor = successor_of(refresh_token, key=await successor_key())
    async with store.begin() as db:
        held = await hold_refresh_token(db, refresh_token)
        outcome: Grant | GatewayError | None = await refuse_unusable(
            db, held, now=now, client=client
        )
        if outcome is None:
            outcome = await _rotate(
                db, held, successor=successor, now=now, reuse_grace=reuse_grace, client=client
            )
    if isinstance(outcome, GatewayError):
        raise outcome
    return issuer.issue(outcome)


async def _rotate(
    db: AsyncSession,
    held: Held,
    *,
    successor: str,
    now: datetime,
    reuse_grace: int,
    client: ClientInfo,
) -> Grant | GatewayError:
    """Spend a usable token for its successor, if what the session was granted on still holds."""
    session, user = held.session, held.user
    successor_hash = hash_refresh_token(successor)
    use = await spend(db, held, now=now, successor_hash=successor_hash)
    spent = refresh_spend(use, successor_hash=successor_hash, now=now, grace=reuse_grace)
    if spent is Spend.REUSED:
        await end_for_reuse(db, held, now=now, client=client)
        return reused()
    membership = None
    if session.organization_id is not None:
        membership = held_membership(session.organization_id, await memberships_of(db, user.id))
        if membership is None:
            await revoke_session(db, session, reason="membership_removed", now=now)
            return membership_removed()
    if spent is Spend.FIRST_USE:
        db.add(RefreshToken(token_hash=successor_hash, session_id=session.id))
        record_event(
            db, "token_refreshed", user_id=user.id, ip=client.ip, details={"session_id": session.id}
        )
    return Grant(
        identity=identity_of(user, membership),
        session_id=session.id,
        session_expires_at=session.expires_at,
        refresh_token=successor,
    )
