"""Changing one's password: the current one first, then every other session ends."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.accounts import check_password_policy, replace_password
from gateway.sessions._throttle import clear_failures, client_key, record_failure, reserve_attempt
from gateway.sessions.current import authenticate
from gateway.sessions.errors import InvalidCredentials
from gateway.sessions.issuing import ClientInfo
from gateway.sessions.login import PasswordCheck
from gateway.settings import Settings
from gateway.store import User, record_event, utcnow
from gateway.tokens import KeyRing

_WRONG = "The current password is incorrect."


async def change_password(
    *,
    store: async_sessionmaker[AsyncSession],
    settings: Settings,
    passwords: PasswordCheck,
    ring: KeyRing,
    access_token: str,
    current_password: str,
    new_password: str,
    client: ClientInfo,
) -> list[str]:
    """Replace the caller's password after verifying the current one; return the ended sessions.

    The caller is authenticated like any request (session live, user active). A wrong current
    password counts on the sign-in throttle of the account's email and the client's address,
    reserved before the verification exactly as a sign-in is: a stolen access token buys no
    more guesses than the login form, and the lock it earns is the login's. The caller's own
    session stays; every other one ends, as does every outstanding reset link.
    """
    check_password_policy(new_password, min_length=settings.password_min_length)
    address = client_key(client.ip)
    async with store.begin() as db:
        caller = await authenticate(db, token=access_token, ring=ring, settings=settings)
        user_id, session_id = caller.user.id, caller.session.id
        email_key, stored_hash = caller.user.email_normalized, caller.user.password_hash
        # A refusal (429) raises here and rolls the reservation back.
        await reserve_attempt(db, email_key, address, now=utcnow(), settings=settings)
    if not await passwords.verify(stored_hash, current_password):
        async with store.begin() as db:
            await record_failure(db, email_key, address, now=utcnow(), settings=settings)
            record_event(db, "password_change_failed", user_id=user_id, ip=client.ip)
        raise InvalidCredentials(_WRONG)
    new_hash = await passwords.hashing.hash(new_password)
    async with store.begin() as db:
        # The write first, so that SQLite takes its write lock before anything is read.
        await clear_failures(db, email_key, address)
        # Checked again under lock: the session may have ended, or the password changed, while
        # the hashes were computed.
        await authenticate(db, token=access_token, ring=ring, settings=settings, lock=True)
        user = await db.get(User, user_id, with_for_update=True)
        if user is None or user.password_hash != stored_hash:
            raise InvalidCredentials(_WRONG)
        now = utcnow()
        ended = await replace_password(
            db=db, user=user, password_hash=new_hash, now=now, keep_session=session_id
        )
        record_event(
            db, "password_changed", user_id=user.id, ip=client.ip, details={"sessions": ended}
        )
    return ended
