"""Users: create, look up by email, suspend and activate."""

from __future__ import annotations

from typing import Any, cast

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts.errors import (
    EmailTaken,
    InvalidDbRole,
    InvalidEmail,
    UserNotFound,
)
from gateway.accounts.memberships import add_membership, check_org_role
from gateway.accounts.organizations import get_organization
from gateway.accounts.passwords import PasswordHashing, check_password_policy
from gateway.revocation import announce_user_standing, revoke_user_sessions
from gateway.settings import Settings
from gateway.store import USER_STATUSES, User, fresh_id, record_event, utcnow


def normalize_email(email: str) -> tuple[str, str]:
    """Return ``(display form, look-up key)``; the key is what uniqueness is checked on.

    The key is lower-cased whole: RFC 5321 lets a server treat the local part case-sensitively,
    but no provider we know of does, and treating ``Ada@`` and ``ada@`` as two accounts invites
    account confusion.
    """
    try:
        valid = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmail(f"That is not a valid email address: {exc}") from None
    return valid.normalized, valid.normalized.lower()


async def create_user(
    *,
    db: AsyncSession,
    passwords: PasswordHashing,
    settings: Settings,
    email: str,
    password: str,
    db_role: str | None = None,
    organization_id: int | None = None,
    org_role: str | None = None,
    email_verified: bool = False,
) -> User:
    """Create a user, optionally as a member of an organization, in the caller's transaction.

    Every check runs before anything is written, so a refusal leaves the store unchanged.
    ``email_verified`` says the address is proven (the operator vouches for it in ``gateway
    users create``; an accepted invitation proved it); a self sign-up leaves it False until the
    verification link is followed, which sets ``email_verified_at``.
    """
    display_email, email_key = normalize_email(email)
    check_password_policy(password, min_length=settings.password_min_length)
    role = db_role or settings.authenticated_role
    if role not in settings.allowed_roles:
        raise InvalidDbRole(
            f"The database role {role!r} is not in GATEWAY_ALLOWED_ROLES "
            f"({', '.join(settings.allowed_roles)})."
        )
    if organization_id is not None:
        org_role = check_org_role(org_role or "org_client")
        await get_organization(db=db, organization_id=organization_id)
    if await db.scalar(select(User.id).where(User.email_normalized == email_key)) is not None:
        raise EmailTaken("A user with that email address already exists.")

    user = await insert_user(
        db,
        display_email=display_email,
        email_key=email_key,
        password_hash=await passwords.hash(password),
        db_role=role,
        email_verified=email_verified,
    )
    if organization_id is not None and org_role is not None:
        await add_membership(db=db, user=user, organization_id=organization_id, role=org_role)
    return user


async def insert_user(
    db: AsyncSession,
    *,
    display_email: str,
    email_key: str,
    password_hash: str,
    db_role: str,
    email_verified: bool,
) -> User:
    """Write a user whose every field is already checked (and whose password is hashed)."""
    user = User(
        id=await fresh_id(db, User),
        email=display_email,
        email_normalized=email_key,
        password_hash=password_hash,
        status="active",
        db_role=db_role,
        email_verified_at=utcnow() if email_verified else None,
    )
    db.add(user)
    await db.flush()
    record_event(db, "user_created", user_id=user.id)
    return user


async def get_user_by_email(*, db: AsyncSession, email: str) -> User:
    _, email_key = normalize_email(email)
    user = await db.scalar(select(User).where(User.email_normalized == email_key))
    if user is None or user.deleted_at is not None:
        raise UserNotFound("There is no user with that email address.")
    return user


async def get_user_by_id(*, db: AsyncSession, user_id: int) -> User:
    """The user with that id; a deleted user is not found (its row is only a tombstone)."""
    user = await db.get(User, user_id)
    if user is None or user.deleted_at is not None:
        raise UserNotFound("There is no user with that id.")
    return user


async def list_users(*, db: AsyncSession, limit: int, after_id: int | None = None) -> list[User]:
    """Up to ``limit`` users in id order, after ``after_id``: pages that a concurrent sign-up
    cannot shift (keyset pagination, unlike an offset)."""
    query = select(User).where(User.deleted_at.is_(None)).order_by(User.id).limit(limit)
    if after_id is not None:
        query = query.where(User.id > after_id)
    return list(await db.scalars(query))


async def set_user_status(*, db: AsyncSession, email: str, status: str) -> User:
    """Suspend or reactivate a user; recorded in the audit trail."""
    if status not in USER_STATUSES:
        raise ValueError(f"unknown user status {status!r}")
    user = await get_user_by_email(db=db, email=email)
    # The write comes first and only touches a live row: it takes the row's lock (PostgreSQL)
    # or the store's write lock (SQLite) before anything is decided, so a deletion committed
    # meanwhile is seen (UserNotFound) instead of being overwritten with "active".
    claimed = await db.execute(
        update(User)
        .where(User.id == user.id, User.deleted_at.is_(None))
        .values(updated_at=utcnow())
    )
    if cast(CursorResult[Any], claimed).rowcount != 1:
        raise UserNotFound("There is no user with that email address.")
    await db.refresh(user)
    if user.status != status:
        user.status = status
        user.updated_at = utcnow()
        record_event(
            db,
            f"user_{'suspended' if status == 'suspended' else 'activated'}",
            user_id=user.id,
        )
        await db.flush()
        if status == "suspended":
            # Suspension ends every session: reactivating the account later must not bring a
            # stolen refresh token back to life.
            await revoke_user_sessions(db, user.id, reason="user_suspended", now=utcnow())
        # Running gateways refuse (or accept again) the user's tokens at once.
        await announce_user_standing(db, user.id, suspended=status != "active")
    return user
