"""Starting sessions and issuing token pairs: the one place tokens are minted."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.sessions._identity import MembershipView, identity_of
from gateway.sessions._refresh_tokens import hash_refresh_token, new_refresh_token
from gateway.settings import Settings
from gateway.store import RefreshToken, Session, User, record_event
from gateway.tokens import Identity, KeyRingHolder, build_access_claims, sign_access_token


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip: str | None
    user_agent: str | None


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token pair is issued for: an identity, its session and expiry, a refresh token."""

    identity: Identity
    session_id: str
    session_expires_at: datetime
    refresh_token: str


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    expires_at: int
    refresh_token: str
    identity: Identity
    session_id: str


@dataclass(frozen=True, slots=True)
class TokenIssuer:
    """Signs access tokens with the key ring in service, under the configured claims."""

    settings: Settings
    keys: KeyRingHolder

    def issue(self, grant: Grant) -> IssuedTokens:
        """Sign an access token for the grant's session; it never outlives the session."""
        now = int(time.time())
        claims = build_access_claims(
            grant.identity,
            settings=self.settings,
            session_id=grant.session_id,
            now=now,
            not_after=int(grant.session_expires_at.timestamp()),
        )
        return IssuedTokens(
            access_token=sign_access_token(self.keys.ring, claims),
            expires_in=claims["exp"] - now,
            expires_at=claims["exp"],
            refresh_token=grant.refresh_token,
            identity=grant.identity,
            session_id=grant.session_id,
        )


async def start_session(
    db: AsyncSession,
    *,
    user: User,
    membership: MembershipView | None,
    client: ClientInfo,
    now: datetime,
    expires_at: datetime,
    event: str,
) -> Grant:
    """Create a session with its first refresh token, in the caller's transaction.

    Every sign-in gets a new session id and a new refresh token, so nothing a client (or an
    attacker) held before the sign-in carries over into it (no session fixation).
    """
    identity = identity_of(user, membership)
    session = Session(
        id=secrets.token_urlsafe(18),
        user_id=user.id,
        organization_id=identity.organization_id,
        created_at=now,
        expires_at=expires_at,
        user_agent=(client.user_agent or "")[:512] or None,
        ip=client.ip,
    )
    refresh_token = new_refresh_token()
    db.add(session)
    await db.flush()
    db.add(RefreshToken(token_hash=hash_refresh_token(refresh_token), session_id=session.id))
    if membership is not None:
        user.last_organization_id = membership.organization_id
    record_event(
        db,
        event,
        user_id=user.id,
        ip=client.ip,
        details={"session_id": session.id, "organization_id": identity.organization_id},
    )
    return Grant(
        identity=identity,
        session_id=session.id,
        session_expires_at=session.expires_at,
        refresh_token=refresh_token,
    )
