"""Switching organization: the session's refresh token is spent for a session in another one."""

from __future__ import annotations

from gateway.errors import GatewayError
from gateway.revocation.ending import revoke_session
from gateway.sessions.errors import (
    AlreadyInOrganization,
    InvalidRefreshToken,
    RefreshTokenReused,
    RefreshTokenRotated,
)
from gateway.sessions.identity import choose_membership, memberships_of
from gateway.sessions.issuing import ClientInfo, IssuedTokens, issue_tokens, start_session
from gateway.sessions.refresh import (
    end_for_reuse,
    hold_refresh_token,
    in_grace,
    refuse_unusable,
    spend,
)
from gateway.sessions.services import SessionServices
from gateway.store.audit import record_event
from gateway.store.models import utcnow
from gateway.tokens.signing import verify_access_token


async def switch_organization(
    runtime: SessionServices,
    *,
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
    settings = runtime.settings
    claims = verify_access_token(
        runtime.keys.ring,
        access_token,
        issuer=settings.issuer,
        audience=settings.audience,
        allowed_roles=settings.allowed_roles,
    )
    now = utcnow()
    async with runtime.store.begin() as db:
        held = await hold_refresh_token(db, refresh_token)
        # Reuse of a replaced session's token is detected before anything else is looked at,
        # whatever access token comes with it.
        refusal: GatewayError | None = await refuse_unusable(db, held, now=now, client=client)
        membership = None
        if refusal is None:
            if claims.get("sid") != held.session.id or claims.get("sub") != str(held.user.id):
                raise InvalidRefreshToken(
                    "The refresh token does not belong to the access token's session."
                )
            if organization_id == held.session.organization_id:
                raise AlreadyInOrganization("This session already acts for that organization.")
            try:
                membership = choose_membership(
                    held.user, await memberships_of(db, held.user.id), organization_id
                )
            except GatewayError as exc:
                record_event(
                    db,
                    "switch_refused",
                    user_id=held.user.id,
                    ip=client.ip,
                    details={"reason": exc.code},
                )
                refusal = exc
        if refusal is None and not await spend(db, held, now=now, successor_hash=None):
            # Only a refresh leaves a successor: a winner without one was a switch, whose new
            # session descends from this token (SQLite, no row locks), so this is reuse.
            won_by_refresh = held.row.successor_hash is not None
            if won_by_refresh and in_grace(held, now=now, grace=settings.refresh_reuse_grace):
                # A refresh of this very token won a race a moment ago: the client holds a
                # newer token and may retry with it; nothing is ended.
                refusal = RefreshTokenRotated(
                    "This refresh token was just rotated; retry with the newest one."
                )
            else:
                await end_for_reuse(db, held, now=now, client=client)
                refusal = RefreshTokenReused(
                    "This refresh token was already used; the session has been ended."
                )
        if refusal is None:
            session, new_refresh_token, identity = await start_session(
                db,
                runtime,
                user=held.user,
                membership=membership,
                client=client,
                now=now,
                event="organization_switched",
                # The new session ends when the old one would have: switching never lengthens
                # a session.
                expires_at=held.session.expires_at,
            )
            held.session.replaced_by = session.id
            await revoke_session(db, held.session, reason="switched_organization", now=now)
    if refusal is not None:
        raise refusal
    return issue_tokens(
        runtime,
        identity=identity,
        session_id=session.id,
        session_expires_at=session.expires_at,
        refresh_token=new_refresh_token,
    )
