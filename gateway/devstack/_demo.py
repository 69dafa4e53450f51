"""The demo organization and its org_admin: created on the first run, kept on every later one."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from gateway.accounts import PasswordHashing, add_membership, create_organization, create_user
from gateway.settings import Settings
from gateway.store import Membership, Organization, User, make_sessionmaker, open_store

DEMO_ORGANIZATION = "Demo"


@dataclass(frozen=True, slots=True)
class DemoAccount:
    email: str
    user_id: int
    organization_id: int
    created: bool
    """False when the user existed: their password is whatever it was set to then."""


async def ensure_demo_account(settings: Settings, *, email: str, password: str) -> DemoAccount:
    """The demo user, ``org_admin`` of the demo organization, in one store transaction.

    An existing user keeps their password and sessions: re-running ``gateway dev`` in the same
    folder must not undo what was done with the stack since.
    """
    engine = await open_store(settings)
    try:
        async with make_sessionmaker(engine).begin() as db:
            organization = await db.scalar(
                select(Organization).where(Organization.name == DEMO_ORGANIZATION)
            )
            if organization is None:
                organization = await create_organization(db=db, name=DEMO_ORGANIZATION)
            user = await db.scalar(select(User).where(User.email_normalized == email.lower()))
            created = user is None
            if created:
                hashing = PasswordHashing(workers=1)
                try:
                    user = await create_user(
                        db=db,
                        passwords=hashing,
                        settings=settings,
                        email=email,
                        password=password,
                        organization_id=organization.id,
                        org_role="org_admin",
                        email_verified=True,
                    )
                finally:
                    hashing.close()
            else:
                assert user is not None
                member = await db.scalar(
                    select(Membership).where(
                        Membership.user_id == user.id,
                        Membership.organization_id == organization.id,
                    )
                )
                if member is None:
                    await add_membership(
                        db=db, user=user, organization_id=organization.id, role="org_admin"
                    )
            assert user is not None
            return DemoAccount(
                email=user.email,
                user_id=user.id,
                organization_id=organization.id,
                created=created,
            )
    finally:
        await engine.dispose()
