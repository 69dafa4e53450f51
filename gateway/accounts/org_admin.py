"""Organizations as their users see them: list one's own, create one, rename one."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts._access import claim_organization, refused_for, require_org_admin
from gateway.accounts.errors import OrganizationCreationClosed, OrganizationNameTaken
from gateway.accounts.memberships import add_membership
from gateway.accounts.organizations import clean_organization_name, create_organization
from gateway.settings import Settings
from gateway.store import Membership, Organization, User, record_event


@dataclass(frozen=True, slots=True)
class OrganizationView:
    organization_id: int
    org_name: str
    #: The user's role in it; None in the operator's list of every organization.
    role: str | None


async def list_organizations(db: AsyncSession, *, user_id: int | None) -> list[OrganizationView]:
    """The user's organizations with their role, oldest membership first; ``None``: all of them."""
    if user_id is None:
        everything = await db.execute(
            select(Organization.id, Organization.name).order_by(Organization.id)
        )
        return [OrganizationView(org_id, name, None) for org_id, name in everything]
    rows = await db.execute(
        select(Organization.id, Organization.name, Membership.role)
        .join(Membership, Membership.organization_id == Organization.id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.created_at, Organization.id)
    )
    return [OrganizationView(org_id, name, role) for org_id, name, role in rows]


def may_create_organization(user: User, settings: Settings) -> OrganizationCreationClosed | None:
    """Users create organizations only on an open gateway, and only with a proven address.

    With ``GATEWAY_SIGNUP`` closed or invite, organizations are the operator's to make (``gateway
    orgs create``): a user who was let in to one organization must not open new tenants.
    """
    if settings.signup != "open":
        return OrganizationCreationClosed(
            "Organizations are created by the operator of this gateway."
        )
    if user.email_verified_at is None:
        return OrganizationCreationClosed(
            "Verify your email address before creating an organization."
        )
    return None


async def create_own_organization(
    db: AsyncSession, *, user: User, name: str, settings: Settings
) -> OrganizationView:
    """A new organization with ``user`` as its first org_admin."""
    refusal = may_create_organization(user, settings)
    if refusal is not None:
        raise refusal
    organization = await create_organization(db=db, name=name, creator_id=user.id)
    await add_membership(db=db, user=user, organization_id=organization.id, role="org_admin")
    return OrganizationView(organization.id, organization.name, "org_admin")


async def rename_organization(
    db: AsyncSession, *, organization_id: int, name: str, actor_id: int | None
) -> OrganizationView:
    """Rename an organization (an org_admin of it, or the operator)."""
    name = clean_organization_name(name)
    if not await claim_organization(db, organization_id):
        raise refused_for(actor_id, organization_id)
    await require_org_admin(db, organization_id=organization_id, actor_id=actor_id)
    organization = await db.get(Organization, organization_id)
    assert organization is not None  # claimed a moment ago
    taken = await db.scalar(
        select(Organization.id).where(Organization.name == name, Organization.id != organization_id)
    )
    if taken is not None:
        raise OrganizationNameTaken(f"An organization named {name!r} already exists.")
    if organization.name != name:
        organization.name = name
        await db.flush()
        record_event(
            db,
            "organization_renamed",
            user_id=actor_id,
            details={"organization_id": organization_id},
        )
    return OrganizationView(organization.id, organization.name, None)
