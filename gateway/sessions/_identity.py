"""Who a session speaks for: the user and the organization (with their role in it) it acts in."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.sessions.errors import NotAMember
from gateway.store import Membership, Organization, User
from gateway.tokens import Identity


@dataclass(frozen=True, slots=True)
class MembershipView:
    organization_id: int
    org_name: str
    role: str


async def memberships_of(db: AsyncSession, user_id: int) -> list[MembershipView]:
    """The user's memberships, oldest first."""
    rows = await db.execute(
        select(Membership.organization_id, Organization.name, Membership.role)
        .join(Organization, Organization.id == Membership.organization_id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.created_at, Membership.organization_id)
    )
    return [MembershipView(org_id, name, role) for org_id, name, role in rows]


def choose_membership(
    user: User, memberships: list[MembershipView], requested: int | None
) -> MembershipView | None:
    """The organization a new session acts in.

    The one asked for (it must be one of the user's), else the one used last, else the oldest
    membership; ``None`` for a user who belongs to no organization.
    """
    by_id = {m.organization_id: m for m in memberships}
    if requested is not None:
        if requested not in by_id:
            raise NotAMember("You are not a member of that organization.")
        return by_id[requested]
    if user.last_organization_id in by_id:
        return by_id[user.last_organization_id]
    return memberships[0] if memberships else None


def identity_of(user: User, membership: MembershipView | None) -> Identity:
    return Identity(
        user_id=user.id,
        email=user.email,
        status=user.status,
        db_role=user.db_role,
        organization_id=membership.organization_id if membership else None,
        org_name=membership.org_name if membership else None,
        org_role=membership.role if membership else None,
    )
