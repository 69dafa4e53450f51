"""Deleting a user: their sessions end first, their personal data goes, their audit id stays."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts.errors import LastOrgAdmin, UserNotFound
from gateway.revocation import announce_user_standing, revoke_user_sessions
from gateway.store import (
    AuthEvent,
    LinkToken,
    LoginKnownAddress,
    LoginThrottle,
    Membership,
    Session,
    User,
    record_event,
)

# Never a deliverable address (RFC 2606 reserves .invalid), and unique per user.
_DELETED_DOMAIN = "deleted.invalid"
# Not an argon2 hash: verification of any password against it fails (PasswordHashing treats a
# malformed hash as a mismatch), so the row can never sign in again.
_NO_PASSWORD = "!deleted"  # noqa: S105 - not a password: one that no password matches


async def delete_user(db: AsyncSession, *, user_id: int, now: datetime) -> User:
    """Delete a user in the caller's transaction.

    The row itself stays, emptied: its sessions are revoked (not deleted), so the proxy keeps
    refusing tokens issued for them until they expire; deleting the sessions would make the
    revocation feed forget them and leave those tokens valid at /rest until ``exp``. The email,
    password hash, session addresses and user agents, memberships, link tokens and sign-in
    throttle rows go; audit rows keep the numeric id (which no longer names anyone) and lose
    their addresses. A user who is the last org_admin of an organization is refused: promote
    someone else first, or the organization would have no one to manage it.
    """
    # The first statement is a write on the live row: on SQLite it takes the store's write lock
    # before anything is read (its FOR UPDATE is a no-op), so two deletions, or a deletion and a
    # sign-in, cannot interleave their reads; on PostgreSQL it locks the row.
    claimed = await db.execute(
        update(User).where(User.id == user_id, User.deleted_at.is_(None)).values(updated_at=now)
    )
    if cast(CursorResult[Any], claimed).rowcount != 1:
        raise UserNotFound("There is no user with that id.")
    user = await db.get(User, user_id, populate_existing=True)
    assert user is not None
    await _refuse_last_admin(db, user_id)
    await revoke_user_sessions(db, user_id, reason="user_deleted", now=now)
    email_key = user.email_normalized
    await db.execute(delete(Membership).where(Membership.user_id == user_id))
    await db.execute(
        delete(LinkToken).where((LinkToken.user_id == user_id) | (LinkToken.email == email_key))
    )
    await db.execute(delete(LoginThrottle).where(LoginThrottle.email_key == email_key))
    await db.execute(delete(LoginKnownAddress).where(LoginKnownAddress.email_key == email_key))
    await db.execute(
        update(Session).where(Session.user_id == user_id).values(ip=None, user_agent=None)
    )
    await db.execute(update(AuthEvent).where(AuthEvent.user_id == user_id).values(ip=None))
    placeholder = f"deleted-{user_id}@{_DELETED_DOMAIN}"
    user.email = placeholder
    user.email_normalized = placeholder
    user.password_hash = _NO_PASSWORD
    user.status = "suspended"  # the revocation feed then refuses its tokens by user id as well
    user.last_organization_id = None
    user.email_verified_at = None
    user.deleted_at = now
    user.updated_at = now
    record_event(db, "user_deleted", user_id=user_id)
    await db.flush()
    await announce_user_standing(db, user_id, suspended=True)
    return user


async def _refuse_last_admin(db: AsyncSession, user_id: int) -> None:
    administered = select(Membership.organization_id).where(
        Membership.user_id == user_id, Membership.role == "org_admin"
    )
    # Lock every admin membership of those organizations before counting, so two deletions of
    # their last two admins cannot both pass this check.
    await db.execute(
        select(Membership.user_id)
        .where(Membership.organization_id.in_(administered), Membership.role == "org_admin")
        .with_for_update()
    )
    admins = (
        await db.execute(
            select(Membership.organization_id, func.count())
            .where(Membership.organization_id.in_(administered), Membership.role == "org_admin")
            .group_by(Membership.organization_id)
        )
    ).all()
    sole = sorted(organization_id for organization_id, count in admins if count <= 1)
    if sole:
        raise LastOrgAdmin(
            f"The user is the last org_admin of organization {sole[0]}: make another member "
            "org_admin first."
        )
