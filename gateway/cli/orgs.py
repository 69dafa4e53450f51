"""``gateway orgs``: organizations."""

from __future__ import annotations

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts import create_organization, list_organizations, rename_organization
from gateway.cli._base import cli, emit, in_transaction, json_option
from gateway.store import ID_MAX


@cli.group()
def orgs() -> None:
    """Organizations."""


@orgs.command("create")
@click.argument("name")
@json_option
def create(name: str, as_json: bool) -> None:
    """Create the organization NAME."""

    async def work(db: AsyncSession) -> dict[str, object]:
        organization = await create_organization(db=db, name=name)
        return {"organization_id": organization.id, "org_name": organization.name}

    document = in_transaction(work)
    emit(
        document,
        as_json=as_json,
        text=f"created organization {document['organization_id']} ({document['org_name']})",
    )


@orgs.command("list")
@json_option
def list_all(as_json: bool) -> None:
    """Every organization."""

    async def work(db: AsyncSession) -> dict[str, object]:
        found = await list_organizations(db, user_id=None)
        return {
            "organizations": [
                {"organization_id": o.organization_id, "org_name": o.org_name} for o in found
            ]
        }

    document = in_transaction(work)
    found = document["organizations"]
    assert isinstance(found, list)
    emit(
        document,
        as_json=as_json,
        text="\n".join(f"{o['organization_id']}\t{o['org_name']}" for o in found)
        or "no organizations",
    )


@orgs.command("rename")
@click.argument("organization_id", type=click.IntRange(1, ID_MAX))
@click.argument("name")
@json_option
def rename(organization_id: int, name: str, as_json: bool) -> None:
    """Rename the organization ORGANIZATION_ID to NAME."""

    async def work(db: AsyncSession) -> dict[str, object]:
        renamed = await rename_organization(
            db, organization_id=organization_id, name=name, actor_id=None
        )
        return {"organization_id": renamed.organization_id, "org_name": renamed.org_name}

    document = in_transaction(work)
    emit(
        document,
        as_json=as_json,
        text=f"organization {document['organization_id']} is now {document['org_name']}",
    )
