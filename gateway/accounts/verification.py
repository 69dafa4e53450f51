"""Email verification: following the link, a fresh link when signed in, the operator's mark."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.accounts.errors import EmailAlreadyVerified, LinkTokenRefused, UserNotFound
from gateway.accounts.link_tokens import REFUSAL, issue_link_token, revoke_link_tokens
from gateway.accounts.link_tokens import spend_link_token as spend
from gateway.accounts.users import get_user_by_email
from gateway.mail import Mailer, MailMessage
from gateway.settings import Settings
from gateway.store import User, record_event, utcnow


def _mark_verified(
    db: AsyncSession, user: User, *, now: datetime, how: str, ip: str | None
) -> bool:
    """Set ``email_verified_at`` unless it is set; whether it changed (audited when it did)."""
    if user.email_verified_at is not None:
        return False
    user.email_verified_at = now
    user.updated_at = now
    record_event(db, "email_verified", user_id=user.id, ip=ip, details={"by": how})
    return True


async def verify_email(
    *, store: async_sessionmaker[AsyncSession], token: str, ip: str | None
) -> None:
    """Spend a ``verify_email`` link token and mark its user's address verified.

    Every failure is the one 400 ``invalid_link_token``: a token that is malformed, unknown,
    of another purpose, expired or spent, and one whose user is gone or whose address is no
    longer the one the token was sent to. An address already verified stays so (the token is
    spent all the same).
    """
    now = utcnow()
    async with store.begin() as db:
        link = await spend(db, purpose="verify_email", token=token, now=now)
        user = await db.get(User, link.user_id) if link.user_id is not None else None
        if user is None or user.email_normalized != link.email:
            raise LinkTokenRefused(REFUSAL)
        _mark_verified(db, user, now=now, how="link", ip=ip)


async def mark_email_verified(*, db: AsyncSession, email: str) -> User:
    """``gateway users verify``: the operator vouches for the address (idempotent)."""
    user = await get_user_by_email(db=db, email=email)
    _mark_verified(db, user, now=utcnow(), how="operator", ip=None)
    await db.flush()
    return user


async def resend_verification(
    *,
    store: async_sessionmaker[AsyncSession],
    mailer: Mailer,
    settings: Settings,
    user_id: int,
    ip: str | None,
) -> None:
    """A fresh verification link for a signed-in user whose address is not verified yet.

    The older links stop working (revoked in the same transaction that issues the new one).
    Refuses 409 ``email_already_verified``, and 503 ``mail_not_configured`` before any write.
    """
    mailer.require_mail()
    now = utcnow()
    async with store.begin() as db:
        user = await db.get(User, user_id)
        if user is None:
            raise UserNotFound("There is no such user.")
        if user.email_verified_at is not None:
            raise EmailAlreadyVerified("This account's email address is already verified.")
        await revoke_link_tokens(db, purpose="verify_email", now=now, user_id=user.id)
        token = await issue_link_token(
            db,
            purpose="verify_email",
            email=user.email,
            ttl=settings.verify_email_ttl,
            now=now,
            user_id=user.id,
        )
        record_event(db, "verification_resent", user_id=user.id, ip=ip)
        to = user.email
    await mailer.send(
        MailMessage(kind="verify_email", to=to, token=token, expires_in=settings.verify_email_ttl)
    )
