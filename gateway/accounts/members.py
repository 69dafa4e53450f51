"""Managing an organization's members: list them, change a role, remove one, leave."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts._access import (
    claim_organization,
    count_admins,
    refused_for,
    require_org_admin,
)
from gateway.accounts.errors import (
    InvalidCursor,
    LastOrgAdmin,
    MemberNotFound,
    NotAnOrgMember,
)
from gateway.accounts.memberships import check_org_role
from gateway.revocation import announce_revocation, revoke_organization_sessions
from gateway.store import ID_MAX, Membership, User, record_event

MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class MemberView:
    user_id: int
    email: str
    role: str


@dataclass(frozen=True, slots=True)
class MemberPage:
    members: list[MemberView]
    #: Pass it as ``cursor`` for the next page; None on the last one.
    next: str | None


def parse_cursor(cursor: str | None) -> int:
    """The user id a page starts after (0: the first page); the cursor is that id in decimal."""
    if cursor is None:
        return 0
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 19 or int(cursor) > ID_MAX:
        raise InvalidCursor("That is not a cursor this endpoint gave out.")
    return int(cursor)


async def list_members(
    db: AsyncSession,
    *,
    organization_id: int,
    actor_id: int | None,
    limit: int = 50,
    cursor: str | None = None,
) -> MemberPage:
    """One page of members ordered by user id: stable while members come and go."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    after = parse_cursor(cursor)
    await require_org_admin(db, organization_id=organization_id, actor_id=actor_id)
    rows = (
        await db.execute(
            select(User.id, User.email, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .where(Membership.organization_id == organization_id, User.id > after)
            .order_by(User.id)
            .limit(limit + 1)
        )
    ).all()
    members = [MemberView(user_id, email, role) for user_id, email, role in rows[:limit]]
    more = len(rows) > limit
    return MemberPage(members=members, next=str(members[-1].user_id) if more else None)


def last_admin_refusal(
    *, current_role: str, new_role: str | None, admins: int
) -> LastOrgAdmin | None:
    """Whether the change would leave the organization without an org_admin.

    ``new_role`` None is leaving or removal; ``admins`` counts the org_admins before it.
    """
    if current_role == "org_admin" and new_role != "org_admin" and admins <= 1:
        return LastOrgAdmin(
            "An organization keeps at least one org_admin: make another member org_admin first."
        )
    return None


async def _member(
    db: AsyncSession, organization_id: int, user_id: int, *, leaving: bool
) -> tuple[Membership, str]:
    found = (
        await db.execute(
            select(Membership, User.email)
            .join(User, User.id == Membership.user_id)
            .where(Membership.organization_id == organization_id, Membership.user_id == user_id)
        )
    ).first()
    if found is None:
        if leaving:
            raise NotAnOrgMember("You are not a member of that organization.")
        raise MemberNotFound("That user is not a member of this organization.")
    membership, email = found
    return membership, email


async def _change(
    db: AsyncSession,
    *,
    organization_id: int,
    user_id: int,
    new_role: str | None,
    actor_id: int | None,
    now: datetime,
    leaving: bool = False,
) -> MemberView | None:
    """Change or end one membership under the organization's lock; None when it ended."""
    if not await claim_organization(db, organization_id):
        if leaving:
            raise NotAnOrgMember("You are not a member of that organization.")
        raise refused_for(actor_id, organization_id)
    if not leaving:
        await require_org_admin(db, organization_id=organization_id, actor_id=actor_id)
    membership, email = await _member(db, organization_id, user_id, leaving=leaving)
    refusal = last_admin_refusal(
        current_role=membership.role,
        new_role=new_role,
        admins=await count_admins(db, organization_id),
    )
    if refusal is not None:
        raise refusal
    details = {"organization_id": organization_id, "by": actor_id}
    lowered = membership.role == "org_admin" and new_role != "org_admin"
    if new_role is None:
        await db.delete(membership)
        event, reason = (
            ("membership_left", "left_organization")
            if leaving
            else (
                "membership_removed",
                "membership_removed",
            )
        )
        record_event(db, event, user_id=user_id, details=details)
    else:
        if membership.role != new_role:
            record_event(
                db,
                "membership_role_changed",
                user_id=user_id,
                details={**details, "from": membership.role, "to": new_role},
            )
        membership.role = new_role
        reason = "org_role_lowered"
    await db.flush()
    if new_role is None or lowered:
        # Tokens carry the org role: every session acting for this organization ends, so no
        # token with the old role (or any role) for it is accepted again, at the proxy too.
        await revoke_organization_sessions(
            db, user_id=user_id, organization_id=organization_id, reason=reason, now=now
        )
        await announce_revocation(db)
    return None if new_role is None else MemberView(user_id, email, new_role)


async def set_member_role(
    db: AsyncSession,
    *,
    organization_id: int,
    user_id: int,
    role: str,
    actor_id: int | None,
    now: datetime,
) -> MemberView:
    """Give a member another org role; lowering an org_admin ends their sessions there."""
    check_org_role(role)
    view = await _change(
        db,
        organization_id=organization_id,
        user_id=user_id,
        new_role=role,
        actor_id=actor_id,
        now=now,
    )
    assert view is not None
    return view


async def remove_member(
    db: AsyncSession, *, organization_id: int, user_id: int, actor_id: int | None, now: datetime
) -> None:
    """End a membership; the member's sessions in that organization end with it."""
    await _change(
        db,
        organization_id=organization_id,
        user_id=user_id,
        new_role=None,
        actor_id=actor_id,
        now=now,
    )


async def leave_organization(
    db: AsyncSession, *, organization_id: int, user_id: int, now: datetime
) -> None:
    """The caller ends their own membership (not the last org_admin's)."""
    await _change(
        db,
        organization_id=organization_id,
        user_id=user_id,
        new_role=None,
        actor_id=user_id,
        now=now,
        leaving=True,
    )
