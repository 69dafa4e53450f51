"""Signing in with an email and a password."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.accounts import MAX_PASSWORD_BYTES, InvalidEmail, PasswordHashing, normalize_email
from gateway.errors import GatewayError
from gateway.sessions._identity import MembershipView, choose_membership, memberships_of
from gateway.sessions._throttle import (
    clear_failures,
    client_key,
    record_failure,
    remember_address,
    reserve_attempt,
)
from gateway.sessions.errors import EmailNotVerified, InvalidCredentials, UserSuspended
from gateway.sessions.issuing import ClientInfo, Grant, IssuedTokens, TokenIssuer, start_session
from gateway.settings import Settings
from gateway.store import User, record_event, utcnow


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


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """Verifying a sign-in's password so that every attempt costs one argon2 verification."""

    hashing: PasswordHashing
    #: What an unknown email is verified against: made at start-up with today's parameters, it
    #: costs what a real account's hash costs and can never match a password anyone knows.
    dummy_hash: str

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """Whether ``password`` is right; without an account (``None``) it never is."""
        # The byte cap matches account creation; a longer password can never be right, but it
        # is still verified (truncated) so that it costs the same as any other attempt.
        candidate = password.encode("utf-8", "surrogatepass")[:MAX_PASSWORD_BYTES].decode(
            "utf-8", "ignore"
        )
        verified = await self.hashing.verify(
            self.dummy_hash if stored_hash is None else stored_hash, candidate
        )
        return stored_hash is not None and verified and candidate == password

    async def upgrade(self, user: User, password: str) -> None:
        """Hash the right password again if its hash was made with older parameters."""
        if self.hashing.needs_rehash(user.password_hash):
            user.password_hash = await self.hashing.hash(password)


@dataclass(frozen=True, slots=True)
class Admitted:
    """The right password: a session is started, in this organization (None: in none)."""

    membership: MembershipView | None


@dataclass(frozen=True, slots=True)
class Refused:
    """The right password, and yet no session; the audit records the error's code as reason."""

    error: GatewayError


def refuse_suspended(user: User) -> Refused | None:
    """A suspended user learns so only after giving the right password."""
    if user.status != "active":
        return Refused(UserSuspended("This account is suspended."))
    return None


def refuse_unverified(user: User, *, require_verified_email: bool) -> Refused | None:
    """GATEWAY_REQUIRE_VERIFIED_EMAIL: an unproven address learns so only after the right
    password, like a suspension. Sessions already granted are not ended by it (refresh and
    switching do not ask), so turning the setting on signs nobody out."""
    if require_verified_email and user.email_verified_at is None:
        return Refused(
            EmailNotVerified(
                "Confirm your email address first: follow the link in the verification mail."
            )
        )
    return None


def admit(
    user: User, memberships: list[MembershipView], organization_id: int | None
) -> Admitted | Refused:
    """An active user with the right password: the organization the session acts in."""
    try:
        return Admitted(choose_membership(user, memberships, organization_id))
    except GatewayError as exc:
        return Refused(exc)


async def login(
    *,
    store: async_sessionmaker[AsyncSession],
    settings: Settings,
    passwords: PasswordCheck,
    issuer: TokenIssuer,
    email: str,
    password: str,
    organization_id: int | None,
    client: ClientInfo,
) -> IssuedTokens:
    """Check the credentials and start a session.

    An unknown email costs exactly what a wrong password costs: one argon2 verification (against
    a dummy hash made at start-up with today's parameters) and the same 401, so neither the
    answer nor its timing tells which emails have accounts. A suspended user, and with
    GATEWAY_REQUIRE_VERIFIED_EMAIL an unverified one, learns so only after the right password.

    The attempt is reserved (counted as a failure) before the password is verified, so a burst
    of concurrent attempts gets no more verifications than the budget; those over it get the
    429 without one. An attempt admitted within the budget is answered on its own merits: a
    lock that its concurrent siblings set meanwhile does not turn a right password into a 429
    (which would mark it as the right one among the 401s).
    """
    now = utcnow()
    key = throttle_key(email)
    address = client_key(client.ip)
    async with store.begin() as db:
        # A refusal raises here and rolls the reservation back: it counts for nothing.
        await reserve_attempt(db, key, address, now=now, settings=settings)
        user = await db.scalar(select(User).where(User.email_normalized == key))
    verified = await passwords.verify(user.password_hash if user is not None else None, password)
    if user is None or not verified:
        async with store.begin() as db:
            await _record_failed(db, key, address, user=user, ip=client.ip, settings=settings)
        raise InvalidCredentials("The email or password is incorrect.")

    async with store.begin() as db:
        # No second look at the locks: this attempt was admitted within the budget, so its
        # answer must not depend on what concurrent attempts did since. The write comes first
        # so that SQLite takes its write lock before anything is read.
        await clear_failures(db, key, address)
        outcome = await _sign_in(
            db,
            user_id=user.id,
            password=password,
            organization_id=organization_id,
            passwords=passwords,
            client=client,
            now=now,
            session_ttl=settings.refresh_token_ttl,
            require_verified_email=settings.require_verified_email,
        )
        if isinstance(outcome, Grant):
            await remember_address(db, key, address, now=now, settings=settings)
    if isinstance(outcome, Refused):
        raise outcome.error
    return issuer.issue(outcome)


async def _record_failed(
    db: AsyncSession,
    key: str,
    address: str,
    *,
    user: User | None,
    ip: str | None,
    settings: Settings,
) -> None:
    """A wrong password, or an unknown email: the reserved attempt's locks may fall."""
    # Dated when the verification failed, not when the request arrived: time spent queued for
    # the hashing threads must not shorten the lock it sets.
    locked = await record_failure(db, key, address, now=utcnow(), settings=settings)
    user_id = user.id if user is not None else None
    record_event(db, "login_failed", user_id=user_id, ip=ip)
    if locked:
        record_event(db, "account_locked", user_id=user_id, ip=ip)


async def _sign_in(
    db: AsyncSession,
    *,
    user_id: int,
    password: str,
    organization_id: int | None,
    passwords: PasswordCheck,
    client: ClientInfo,
    now: datetime,
    session_ttl: int,
    require_verified_email: bool,
) -> Grant | Refused:
    """The right password was given: start a session, or record why there is none."""
    user = await db.get(User, user_id, with_for_update=True)
    assert user is not None
    outcome: Admitted | Refused | None = refuse_suspended(user) or refuse_unverified(
        user, require_verified_email=require_verified_email
    )
    if outcome is None:
        await passwords.upgrade(user, password)
        outcome = admit(user, await memberships_of(db, user.id), organization_id)
    if isinstance(outcome, Refused):
        record_event(
            db,
            "login_refused",
            user_id=user.id,
            ip=client.ip,
            details={"reason": outcome.error.code},
        )
        return outcome
    return await start_session(
        db,
        user=user,
        membership=outcome.membership,
        client=client,
        now=now,
        expires_at=now + timedelta(seconds=session_ttl),
        event="login_succeeded",
    )
