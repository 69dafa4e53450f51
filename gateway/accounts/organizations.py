"""Organizations: create and look up."""

from __future__ import annotations

import unicodedata

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts.errors import (
    InvalidOrganizationName,
    OrganizationNameTaken,
    OrganizationNotFound,
)
from gateway.store import Organization, fresh_id, record_event

MAX_NAME_LENGTH = 200


def clean_organization_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidOrganizationName("The organization name must not be empty.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidOrganizationName(
            f"The organization name must be at most {MAX_NAME_LENGTH} characters long."
        )
    if any(unicodedata.category(char).startswith("C") for char in name):
        raise InvalidOrganizationName("The organization name must not hold control characters.")
    return name


async def check_organization_name_free(db: AsyncSession, name: str) -> None:
    """Refuse a (cleaned) name that another organization has (409 organization_name_taken)."""
    taken = await db.scalar(select(Organization.id).where(Organization.name == name))
    if taken is not None:
        raise OrganizationNameTaken(f"An organization named {name!r} already exists.")


async def create_organization(
    *, db: AsyncSession, name: str, creator_id: int | None = None
) -> Organization:
    """A new organization; ``creator_id`` is the user who made it (None: the operator)."""
    name = clean_organization_name(name)
    await check_organization_name_free(db, name)
    organization = Organization(id=await fresh_id(db, Organization), name=name)
    db.add(organization)
    await db.flush()
    record_event(
        db,
        "organization_created",
        user_id=creator_id,
        details={"organization_id": organization.id},
    )
    return organization


async def get_organization(*, db: AsyncSession, organization_id: int) -> Organization:
    organization = await db.get(Organization, organization_id)
    if organization is None:
        raise OrganizationNotFound(f"There is no organization with id {organization_id}.")
    return organization
