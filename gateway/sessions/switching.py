"""Switching organization: the session's refresh token is spent for a session in another one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.errors import GatewayError
from gateway.revocation import revoke_session
from gateway.sessions._identity import choose_membership, memberships_of
from gateway.sessions._refresh_decision import Spend, switch_spend
from gateway.sessions.current import verify_access
from gateway.sessions.errors import AlreadyInOrganization, InvalidRefreshToken
from gateway.sessions.issuing import ClientInfo, Grant, IssuedTokens, TokenIssuer, start_session
from gateway.sessions.refresh import Held, end_for_reuse, hold_refresh_token, refuse_unusable, spend
from gateway.store import Session, User, record_event, utcnow


def mismatch(
    claims: dict[str, Any], session: Session, user: User, *, organization_id: int
) -> GatewayError | None:
    """Whether the two credentials cannot switch: not one session's, or no switch at all."""
    if claims.get("sid") != session.id or claims.get("sub") != str(user.id):
        return InvalidRefreshToken(
            "The refresh token does not belong to the access token's session."
        )
    if organization_id == session.organization_id:
        return AlreadyInOrganization("This session already acts for that organization.")
    return None


async def switch_organization(
    *,
    store: async_sessionmaker[AsyncSession],
    issuer: TokenIssuer,
    reuse_grace: int,
    access_token: str,
    refresh_token: str,
    organization_id: int,
    client: ClientInfo,
) -> IssuedTokens:
    """A new session in another organization of the caller's; the old session is ended.

    It takes both credentials of one session. The access token says who asks; the refresh
    token, which is spent here exactly as a refresh spends it, is what lets a session go on.
    An access token alone (stolen from a log, a proxy, a page) therefore never becomes a
    session that outlives it, and the owner's refresh token is never taken from them.

    Replacing the session (rather than re-scoping it) means tokens minted for the previous
    organization stop working at once, so one session never speaks for two organizations. The
    replacement keeps the old session's expiry, and the old session records it, so any later
    presentation of one of the old session's refresh tokens ends the replacement too.
    """
    claims = verify_access(access_token, ring=issuer.keys.ring, settings=issuer.settings)
    now = utcnow()
    async with store.begin() as db:
        held = await hold_refresh_token(db, refresh_token)
        # Reuse of a replaced session's token is detected before anything else is looked at,
        # whatever access token comes with it.
        outcome: Grant | GatewayError | None = await refuse_unusable(
            db, held, now=now, client=client
        )
        if outcome is None:
            refusal = mismatch(claims, held.session, held.user, organization_id=organization_id)
            if refusal is not None:
                raise refusal
            outcome = await _replace(
                db,
                held,
                organization_id=organization_id,
                now=now,
                reuse_grace=reuse_grace,
                client=client,
            )
    if isinstance(outcome, GatewayError):
        raise outcome
    return issuer.issue(outcome)


async def _replace(
    db: AsyncSession,
    held: Held,
    *,
    organization_id: int,
    now: datetime,
    reuse_grace: int,
    client: ClientInfo,
) -> Grant | GatewayError:
    """Spend the held token for a session in the organization, and end the session it was of."""
    user = held.user
    try:
        membership = choose_membership(user, await memberships_of(db, user.id), organization_id)
    except GatewayError as exc:
        record_event(
            db, "switch_refused", user_id=user.id, ip=client.ip, details={"reason": exc.code}
        )
        return exc
    use = await spend(db, held, now=now, successor_hash=None)
    spent = switch_spend(use, now=now, grace=reuse_grace)
    if spent is Spend.REUSED:
        await end_for_reuse(db, held, now=now, client=client)
    refusal = spent.refusal()
    if refusal is not None:
        return refusal
    grant = await start_session(
        db,
        user=user,
        membership=membership,
        client=client,
        now=now,
        # The new session ends when the old one would have: switching never lengthens a session.
        expires_at=held.session.expires_at,
        event="organization_switched",
    )
    held.session.replaced_by = grant.session_id
    await revoke_session(db, held.session, reason="switched_organization", now=now)
    return grant
