"""Forgotten passwords: the reset mail, the reset by its link, and setting a password outright."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.accounts.errors import LinkTokenRefused
from gateway.accounts.link_tokens import (
    REFUSAL,
    hash_link_token,
    issue_link_token,
    looks_like_link_token,
    revoke_link_tokens,
    spend_link_token,
)
from gateway.accounts.passwords import PasswordHashing, check_password_policy
from gateway.accounts.users import get_user_by_email, normalize_email
from gateway.mail import MailMessage, Outbox
from gateway.revocation import revoke_session
from gateway.settings import Settings
from gateway.store import LinkToken, Session, User, record_event, utcnow

PURPOSE = "password_reset"
# At most this many reset mails per account and window: a stranger who knows an address cannot
# flood its mailbox. Requests over it are answered like any other and only audited.
MAX_RESET_MAILS = 5
RESET_MAIL_WINDOW = timedelta(hours=1)


async def request_password_reset(
    *,
    store: async_sessionmaker[AsyncSession],
    outbox: Outbox,
    settings: Settings,
    email: str,
    ip: str | None,
) -> None:
    """Mail a reset link to ``email`` if it has an account; the caller answers alike either way.

    Whether mail can be sent is decided first, from the configuration alone, so that refusal
    says nothing about the address. Then known and unknown addresses run the same look-ups (the
    account, the recent reset mails) and the same audit insert in one transaction; an account
    (active or suspended: see docs/security.md) additionally has its older reset links revoked
    and a new one stored. The mail goes to the outbox, delivered after the answer, so the SMTP
    conversation never shows in the response time.
    """
    outbox.require_mail()
    _, email_key = normalize_email(email)
    now = utcnow()
    async with store.begin() as db:
        user = await db.scalar(select(User).where(User.email_normalized == email_key))
        recent = await db.scalar(
            select(func.count())
            .select_from(LinkToken)
            .where(
                LinkToken.email == email_key,
                LinkToken.purpose == PURPOSE,
                LinkToken.created_at > now - RESET_MAIL_WINDOW,
            )
        )
        if user is None:
            record_event(db, "password_reset_requested", ip=ip, details={"account": False})
            return
        if (recent or 0) >= MAX_RESET_MAILS:
            record_event(
                db, "password_reset_requested", user_id=user.id, ip=ip, details={"mail": "limited"}
            )
            return
        await revoke_link_tokens(db, purpose=PURPOSE, now=now, user_id=user.id)
        token = await issue_link_token(
            db,
            purpose=PURPOSE,
            email=email_key,
            ttl=settings.password_reset_ttl,
            now=now,
            user_id=user.id,
        )
        record_event(db, "password_reset_requested", user_id=user.id, ip=ip)
        recipient = user.email
    # Posted only once the token is committed: a link must never arrive before it works.
    outbox.post(
        MailMessage(
            kind="password_reset",
            to=recipient,
            token=token,
            expires_in=settings.password_reset_ttl,
        )
    )


async def reset_password(
    *,
    store: async_sessionmaker[AsyncSession],
    passwords: PasswordHashing,
    settings: Settings,
    token: str,
    password: str,
    ip: str | None,
) -> None:
    """Spend a reset link's token and give its account ``password``; every session ends.

    The new password is checked first (a weak one does not burn the link). A token that cannot
    be spent, for whatever reason, is refused with the one ``LinkTokenRefused``. The token is
    looked up before the password is hashed, so a guessed token costs no argon2 work, and spent
    after it, by the one conditional UPDATE that lets exactly one of two concurrent resets win.
    Following the link proves control of the mailbox: the address is marked verified.
    """
    check_password_policy(password, min_length=settings.password_min_length)
    now = utcnow()
    if not looks_like_link_token(token):
        raise LinkTokenRefused(REFUSAL)
    async with store() as db:
        live = await db.scalar(
            select(LinkToken.token_hash).where(
                LinkToken.token_hash == hash_link_token(token),
                LinkToken.purpose == PURPOSE,
                LinkToken.used_at.is_(None),
                LinkToken.revoked_at.is_(None),
                LinkToken.expires_at > now,
            )
        )
    if live is None:
        raise LinkTokenRefused(REFUSAL)
    password_hash = await passwords.hash(password)
    async with store.begin() as db:
        row = await spend_link_token(db, purpose=PURPOSE, token=token, now=utcnow())
        user = await db.get(User, row.user_id, with_for_update=True) if row.user_id else None
        if user is None:
            raise LinkTokenRefused(REFUSAL)
        ended = await replace_password(db=db, user=user, password_hash=password_hash, now=now)
        if user.email_verified_at is None:
            user.email_verified_at = now
        record_event(db, "password_reset", user_id=user.id, ip=ip, details={"sessions": ended})


@dataclass(frozen=True, slots=True)
class PasswordSet:
    user: User
    sessions_ended: list[str]


async def set_password(
    *,
    db: AsyncSession,
    passwords: PasswordHashing,
    settings: Settings,
    email: str,
    password: str,
) -> PasswordSet:
    """The operator's reset (``gateway users set-password``): no link, every session ends."""
    check_password_policy(password, min_length=settings.password_min_length)
    user = await get_user_by_email(db=db, email=email)
    password_hash = await passwords.hash(password)
    ended = await replace_password(db=db, user=user, password_hash=password_hash, now=utcnow())
    record_event(db, "password_set", user_id=user.id, details={"sessions": ended})
    return PasswordSet(user=user, sessions_ended=ended)


async def replace_password(
    *,
    db: AsyncSession,
    user: User,
    password_hash: str,
    now: datetime,
    keep_session: str | None = None,
) -> list[str]:
    """Store a new password hash and end the sessions the old password opened; return their ids.

    Every live session ends but ``keep_session`` (a password change keeps the caller's), and
    every outstanding reset link is revoked: a link mailed before the change must not undo it.
    Running gateways refuse the ended sessions' access tokens within a second (the feed).
    """
    user.password_hash = password_hash
    user.updated_at = now
    live = [Session.user_id == user.id, Session.revoked_at.is_(None)]
    if keep_session is not None:
        live.append(Session.id != keep_session)
    sessions = (await db.scalars(select(Session).where(*live).with_for_update())).all()
    reason = "password_changed" if keep_session is not None else "password_reset"
    for session in sessions:
        # Each one is announced to the feed, at commit, by revoke_session.
        await revoke_session(db, session, reason=reason, now=now)
    await revoke_link_tokens(db, purpose=PURPOSE, now=now, user_id=user.id)
    await db.flush()
    return [session.id for session in sessions]
