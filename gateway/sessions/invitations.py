"""Accepting an invitation: the membership it grants, and a session in that organization."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.accounts import (
    SignupClosed,
    add_membership,
    check_password_policy,
    create_user,
    spend_link_token,
)
from gateway.errors import GatewayError
from gateway.sessions._identity import MembershipView
from gateway.sessions.errors import InvalidCredentials, UserSuspended
from gateway.sessions.issuing import ClientInfo, Grant, IssuedTokens, TokenIssuer, start_session
from gateway.sessions.login import PasswordCheck
from gateway.settings import Settings
from gateway.store import LinkToken, Membership, Organization, User, record_event, utcnow


async def accept_invitation(
    *,
    store: async_sessionmaker[AsyncSession],
    settings: Settings,
    passwords: PasswordCheck,
    issuer: TokenIssuer,
    token: str,
    password: str,
    client: ClientInfo,
) -> IssuedTokens:
    """Spend an invitation link: join its organization and start a session there.

    The password is required either way. An address without an account gets one with this
    password (its address proven by the link); an address with an account must give that
    account's password, so a leaked link alone signs nobody in. Both cost one argon2 operation
    (a hash, or a verification) and both succeed with the same token response. A wrong
    password spends the link all the same: a leaked link buys one guess, not a brute force.
    """
    check_password_policy(password, min_length=settings.password_min_length)
    now = utcnow()
    async with store.begin() as db:
        invitation = await spend_link_token(db, purpose="invitation", token=token, now=now)
        user = await db.scalar(select(User).where(User.email_normalized == invitation.email))
        outcome = await _join(
            db,
            invitation=invitation,
            user=user,
            password=password,
            passwords=passwords,
            settings=settings,
            now=now,
            client=client,
        )
        if isinstance(outcome, UserSuspended | SignupClosed):
            # Nothing happens: the link stays usable once the account may use it.
            raise outcome
    if isinstance(outcome, GatewayError):
        raise outcome
    return issuer.issue(outcome)


async def _join(
    db: AsyncSession,
    *,
    invitation: LinkToken,
    user: User | None,
    password: str,
    passwords: PasswordCheck,
    settings: Settings,
    now: datetime,
    client: ClientInfo,
) -> Grant | GatewayError:
    assert invitation.organization_id is not None
    assert invitation.role is not None
    organization_id, role = invitation.organization_id, invitation.role
    if user is None:
        if settings.signup == "closed":
            await passwords.verify(None, password)  # the same work as the other answers
            return SignupClosed("This gateway does not create accounts through the API.")
        user = await create_user(
            db=db,
            passwords=passwords.hashing,
            settings=settings,
            email=invitation.email,
            password=password,
            email_verified=True,
        )
    else:
        if not await passwords.verify(user.password_hash, password):
            record_event(
                db,
                "invitation_refused",
                user_id=user.id,
                ip=client.ip,
                details={"organization_id": organization_id, "reason": "invalid_credentials"},
            )
            return InvalidCredentials("The password is incorrect for this account.")
        if user.status != "active":
            return UserSuspended("This account is suspended.")
        await passwords.upgrade(user, password)
        if user.email_verified_at is None:
            user.email_verified_at = now  # the link reached this address
    # Someone who is a member already keeps the role they have: an invitation grants, never lowers.
    existing = await db.get(Membership, (user.id, organization_id))
    if existing is None:
        await add_membership(db=db, user=user, organization_id=organization_id, role=role)
    organization = await db.get(Organization, organization_id)
    assert organization is not None  # the invitation row would be gone with it
    membership = MembershipView(
        organization_id, organization.name, existing.role if existing else role
    )
    return await start_session(
        db,
        user=user,
        membership=membership,
        client=client,
        now=now,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl),
        event="invitation_accepted",
    )
