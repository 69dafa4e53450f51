"""``gateway members``: who belongs to which organization."""

from __future__ import annotations

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts import (
    MAX_PAGE,
    add_membership,
    get_user_by_email,
    list_members,
    remove_member,
    set_member_role,
)
from gateway.cli._base import cli, emit, in_transaction, json_option
from gateway.store import ID_MAX, utcnow


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


org_argument = click.argument("organization_id", type=click.IntRange(1, ID_MAX))


@members.command("list")
@org_argument
@click.option("--limit", type=click.IntRange(1, MAX_PAGE), default=MAX_PAGE, show_default=True)
@click.option("--cursor", default=None, help="The `next` of the previous page.")
@json_option
def list_page(organization_id: int, limit: int, cursor: str | None, as_json: bool) -> None:
    """One page of an organization's members, by user id."""

    async def work(db: AsyncSession) -> dict[str, object]:
        page = await list_members(
            db, organization_id=organization_id, actor_id=None, limit=limit, cursor=cursor
        )
        document: dict[str, object] = {
            "members": [
                {"user_id": m.user_id, "email": m.email, "role": m.role} for m in page.members
            ]
        }
        if page.next is not None:
            document["next"] = page.next
        return document

    document = in_transaction(work)
    rows = document["members"]
    assert isinstance(rows, list)
    lines = [f"{m['user_id']}\t{m['email']}\t{m['role']}" for m in rows]
    if "next" in document:
        lines.append(f"more: --cursor {document['next']}")
    emit(document, as_json=as_json, text="\n".join(lines) or "no members")


@members.command("set-role")
@org_argument
@click.argument("email")
@click.argument("role")
@json_option
def set_role(organization_id: int, email: str, role: str, as_json: bool) -> None:
    """Give a member another org role (lowering one ends their sessions there)."""

    async def work(db: AsyncSession) -> dict[str, object]:
        user = await get_user_by_email(db=db, email=email)
        member = await set_member_role(
            db,
            organization_id=organization_id,
            user_id=user.id,
            role=role,
            actor_id=None,
            now=utcnow(),
        )
        return {
            "user_id": member.user_id,
            "email": member.email,
            "organization_id": organization_id,
            "role": member.role,
        }

    document = in_transaction(work)
    emit(
        document,
        as_json=as_json,
        text=f"{document['email']} is {document['role']} of {organization_id}",
    )


@members.command("remove")
@org_argument
@click.argument("email")
@json_option
def remove(organization_id: int, email: str, as_json: bool) -> None:
    """Remove a member; their sessions in the organization end."""

    async def work(db: AsyncSession) -> dict[str, object]:
        user = await get_user_by_email(db=db, email=email)
        await remove_member(
            db, organization_id=organization_id, user_id=user.id, actor_id=None, now=utcnow()
        )
        return {"user_id": user.id, "email": user.email, "organization_id": organization_id}

    document = in_transaction(work)
    emit(
        document,
        as_json=as_json,
        text=f"{document['email']} is no longer a member of {organization_id}",
    )
