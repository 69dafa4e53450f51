"""Who may manage an organization, and the lock that orders every change to its members."""

from __future__ import annotations

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts.errors import NotAnOrgAdmin, OrganizationNotFound
from gateway.errors import GatewayError
from gateway.store import Membership, Organization

NOT_ADMIN = "You are not an org_admin of that organization."


def refused_for(actor_id: int | None, organization_id: int) -> GatewayError:
    """The refusal for an organization that is missing: 404 to the operator, 403 to a user.

    A user gets the same 403 for an organization that does not exist, one they do not belong
    to and one where they are not an admin, so no organization id is revealed to outsiders.
    """
    if actor_id is None:
        return OrganizationNotFound(f"There is no organization with id {organization_id}.")
    return NotAnOrgAdmin(NOT_ADMIN)


async def claim_organization(db: AsyncSession, organization_id: int) -> bool:
    """Take the organization's lock for the rest of the transaction; False if it does not exist.

    An UPDATE that changes nothing: on PostgreSQL it takes the organization row's write lock,
    on SQLite the database's write lock (SQLite locks nothing on a SELECT ... FOR UPDATE, so
    the write has to come first). Every change to the organization's members claims it before
    reading them, so two concurrent changes (say, demoting each of its last two admins) run one
    after the other, and the second one sees the first.
    """
    result = await db.execute(
        update(Organization)
        .where(Organization.id == organization_id)
        .values(name=Organization.name)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def role_in(db: AsyncSession, *, user_id: int, organization_id: int) -> str | None:
    return await db.scalar(
        select(Membership.role).where(
            Membership.user_id == user_id, Membership.organization_id == organization_id
        )
    )


async def require_org_admin(
    db: AsyncSession, *, organization_id: int, actor_id: int | None
) -> None:
    """Refuse unless ``actor_id`` is an org_admin there; ``None`` is the operator (the CLI)."""
    if actor_id is None:
        if await db.get(Organization, organization_id) is None:
            raise refused_for(None, organization_id)
        return
    if await role_in(db, user_id=actor_id, organization_id=organization_id) != "org_admin":
        raise NotAnOrgAdmin(NOT_ADMIN)


async def count_admins(db: AsyncSession, organization_id: int) -> int:
    count = await db.scalar(
        select(func.count())
        .select_from(Membership)
        .where(Membership.organization_id == organization_id, Membership.role == "org_admin")
    )
    return int(count or 0)
