"""``gateway members``: who belongs to which organization."""

from __future__ import annotations

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts import add_membership, get_user_by_email
from gateway.cli._base import cli, emit, in_transaction, json_option
from gateway.store import ID_MAX


@cli.group()
def members() -> None:
    """Organization memberships."""


@members.command("add")
@click.option(
    "--org",
    "organization_id",
    type=click.IntRange(1, ID_MAX),
    required=True,
    help="Organization id.",
)
@click.option("--email", required=True, help="The user's email address.")
@click.option("--role", required=True, help="org_admin or org_client.")
@json_option
def add(organization_id: int, email: str, role: str, as_json: bool) -> None:
    """Add a user to an organization with an org role."""

    async def work(db: AsyncSession) -> dict[str, object]:
        user = await get_user_by_email(db=db, email=email)
        membership = await add_membership(
            db=db, user=user, organization_id=organization_id, role=role
        )
        return {
            "user_id": user.id,
            "email": user.email,
            "organization_id": membership.organization_id,
            "role": membership.role,
        }

    document = in_transaction(work)
    emit(
        document,
        as_json=as_json,
        text=f"{document['email']} is {document['role']} of {document['organization_id']}",
    )
