"""``gateway orgs``: organizations."""

from __future__ import annotations

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts import create_organization
from gateway.cli._base import cli, emit, in_transaction, json_option


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
