"""Signing in with an email and a password."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from gateway.accounts.errors import InvalidEmail
from gateway.accounts.passwords import MAX_PASSWORD_BYTES
from gateway.accounts.users import normalize_email
from gateway.errors import GatewayError
from gateway.sessions.errors import InvalidCredentials, UserSuspended
from gateway.sessions.identity import choose_membership, memberships_of
from gateway.sessions.issuing import ClientInfo, IssuedTokens, issue_tokens, start_session
from gateway.sessions.services import SessionServices
from gateway.sessions.throttle import (
    clear_failures,
    client_key,
    record_failure,
    remember_address,
    reserve_attempt,
)
from gateway.store.audit import record_event
from gateway.store.models import User, utcnow


def throttle_key(email: str) -> str:
    """The key failures are counted under; an unparseable email still gets one.

    An address that is not an email cannot have an account, but it is throttled all the same
    (answering it differently would be a tell); its key is a digest, so whatever bytes it holds
    never reach the store.
    """
    try:
        return normalize_email(email)[1]
    except InvalidEmail:
        return (
            "invalid:"
            + hashlib.sha256(email.strip().lower().encode("utf-8", "replace")).hexdigest()
        )


async def login(
    runtime: SessionServices,
    *,
    email: str,
    password: str,
    organization_id: int | None,
    client: ClientInfo,
) -> IssuedTokens:
    """Check the credentials and start a session.

    An unknown email costs exactly what a wrong password costs: one argon2 verification (against
    a dummy hash made at start-up with today's parameters) and the same 401, so neither the
    answer nor its timing tells which emails have accounts. A suspended user learns so only
    after giving the right password.

    The attempt is reserved (counted as a failure) before the password is verified, so a burst
    of concurrent attempts gets no more verifications than the budget; those over it get the
    429 without one. An attempt admitted within the budget is answered on its own merits: a
    lock that its concurrent siblings set meanwhile does not turn a right password into a 429
    (which would mark it as the right one among the 401s).
    """
    settings = runtime.settings
    now = utcnow()
    key = throttle_key(email)
    address = client_key(client.ip)
    async with runtime.store.begin() as db:
        # A refusal raises here and rolls the reservation back: it counts for nothing.
        await reserve_attempt(db, key, address, now=now, settings=settings)
        user = await db.scalar(select(User).where(User.email_normalized == key))
    stored_hash = user.password_hash if user is not None else runtime.dummy_hash
    # The byte cap matches account creation; a longer password can never be right, but it is
    # still verified (truncated) so that it costs the same as any other attempt.
    candidate = password.encode("utf-8", "surrogatepass")[:MAX_PASSWORD_BYTES].decode(
        "utf-8", "ignore"
    )
    verified = await runtime.passwords.verify(stored_hash, candidate) and candidate == password

    if user is None or not verified:
        async with runtime.store.begin() as db:
            # Dated when the verification failed, not when the request arrived: time spent
            # queued for the hashing threads must not shorten the lock it sets.
            locked = await record_failure(db, key, address, now=utcnow(), settings=settings)
            user_id = user.id if user is not None else None
            record_event(db, "login_failed", user_id=user_id, ip=client.ip)
            if locked:
                record_event(db, "account_locked", user_id=user_id, ip=client.ip)
        raise InvalidCredentials("The email or password is incorrect.")

    refusal: GatewayError | None = None
    async with runtime.store.begin() as db:
        # No second look at the locks: this attempt was admitted within the budget, so its
        # answer must not depend on what concurrent attempts did since. The write comes first
        # so that SQLite takes its write lock before anything is read.
        await clear_failures(db, key, address)
        user = await db.get(User, user.id, with_for_update=True)
        assert user is not None
        if user.status != "active":
            record_event(
                db,
                "login_refused",
                user_id=user.id,
                ip=client.ip,
                details={"reason": "user_suspended"},
            )
            refusal = UserSuspended("This account is suspended.")
        else:
            if runtime.passwords.needs_rehash(user.password_hash):
                user.password_hash = await runtime.passwords.hash(password)
            try:
                membership = choose_membership(
                    user, await memberships_of(db, user.id), organization_id
                )
            except GatewayError as exc:
                record_event(
                    db, "login_refused", user_id=user.id, ip=client.ip, details={"reason": exc.code}
                )
                refusal = exc
            else:
                session, refresh_token, identity = await start_session(
                    db,
                    runtime,
                    user=user,
                    membership=membership,
                    client=client,
                    now=now,
                    event="login_succeeded",
                )
                await remember_address(db, key, address, now=now, settings=settings)
    if refusal is not None:
        raise refusal
    return issue_tokens(
        runtime,
        identity=identity,
        session_id=session.id,
        session_expires_at=session.expires_at,
        refresh_token=refresh_token,
    )
