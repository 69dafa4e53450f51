"""Memberships: which organizations a user belongs to, and with which org role."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts.errors import AlreadyAMember, InvalidOrgRole, NotAMember
from gateway.accounts.organizations import get_organization
from gateway.store import ORG_ROLES, Membership, User, record_event


def check_org_role(role: str) -> str:
    if role not in ORG_ROLES:
        raise InvalidOrgRole(
            f"{role!r} is not an organization role; use one of {', '.join(ORG_ROLES)}."
        )
    return role


async def add_membership(
    *, db: AsyncSession, user: User, organization_id: int, role: str
) -> Membership:
    check_org_role(role)
    await get_organization(db=db, organization_id=organization_id)
    existing = await db.scalar(
        select(Membership).where(
            Membership.user_id == user.id, Membership.organization_id == organization_id
        )
    )
    if existing is not None:
        raise AlreadyAMember(
            f"{user.email} is already a member of organization {organization_id} "
            f"(as {existing.role})."
        )
    membership = Membership(user_id=user.id, organization_id=organization_id, role=role)
    db.add(membership)
    await db.flush()
    record_event(
        db,
        "membership_added",
        user_id=user.id,
        details={"organization_id": organization_id, "role": role},
    )
    return membership


async def get_membership(*, db: AsyncSession, user: User, organization_id: int) -> Membership:
    """The user's membership of that organization, or NotAMember."""
    membership = await db.scalar(
        select(Membership).where(
            Membership.user_id == user.id, Membership.organization_id == organization_id
        )
    )
    if membership is None:
        raise NotAMember(f"{user.email} is not a member of organization {organization_id}.")
    return membership
