"""``gateway invitations``: invite an address to an organization, list and withdraw invitations."""

from __future__ import annotations

import asyncio

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts import invite, list_invitations, revoke_invitation
from gateway.cli._base import cli, emit, in_transaction, json_option, settings
from gateway.mail import Mailer
from gateway.store import ID_MAX, make_sessionmaker, open_store, utcnow

org_argument = click.argument("organization_id", type=click.IntRange(1, ID_MAX))


@cli.group()
def invitations() -> None:
    """Invitations to organizations (sent by mail)."""


@invitations.command("create")
@org_argument
@click.argument("email")
@click.option("--role", required=True, type=click.Choice(["org_admin", "org_client"]))
@json_option
def create(organization_id: int, email: str, role: str, as_json: bool) -> None:
    """Invite EMAIL to the organization and mail them the link (dev mode: also print it)."""
    config = settings()

    async def main() -> dict[str, object]:
        engine = await open_store(config)
        try:
            sent = await invite(
                store=make_sessionmaker(engine),
                mailer=Mailer(settings=config),
                organization_id=organization_id,
                email=email,
                role=role,
                actor_id=None,
                ttl=config.invitation_ttl,
            )
        finally:
            await engine.dispose()
        document: dict[str, object] = {
            "invitation_id": sent.invitation.invitation_id,
            "email": sent.invitation.email,
            "role": sent.invitation.role,
            "expires_at": sent.invitation.expires_at.isoformat(),
        }
        if config.dev_mode:
            # DEV MODE ONLY: the link holds the token; production only ever mails it.
            document["link"] = sent.link
        return document

    document = asyncio.run(main())
    text = f"invited {document['email']} as {document['role']} ({document['invitation_id']})"
    if "link" in document:
        text += f"\nlink (dev mode): {document['link']}"
    emit(document, as_json=as_json, text=text)


@invitations.command("list")
@org_argument
@json_option
def list_pending(organization_id: int, as_json: bool) -> None:
    """The organization's pending invitations."""

    async def work(db: AsyncSession) -> dict[str, object]:
        pending = await list_invitations(
            db, organization_id=organization_id, actor_id=None, now=utcnow()
        )
        return {
            "invitations": [
                {
                    "invitation_id": i.invitation_id,
                    "email": i.email,
                    "role": i.role,
                    "expires_at": i.expires_at.isoformat(),
                }
                for i in pending
            ]
        }

    document = in_transaction(work)
    rows = document["invitations"]
    assert isinstance(rows, list)
    lines = [f"{i['invitation_id']}\t{i['email']}\t{i['role']}\t{i['expires_at']}" for i in rows]
    emit(document, as_json=as_json, text="\n".join(lines) or "no pending invitations")


@invitations.command("revoke")
@org_argument
@click.argument("invitation_id")
@json_option
def revoke(organization_id: int, invitation_id: str, as_json: bool) -> None:
    """Withdraw a pending invitation: its link stops working."""

    async def work(db: AsyncSession) -> dict[str, object]:
        await revoke_invitation(
            db,
            organization_id=organization_id,
            invitation_id=invitation_id,
            actor_id=None,
            now=utcnow(),
        )
        return {"invitation_id": invitation_id, "revoked": True}

    in_transaction(work)
    emit(
        {"invitation_id": invitation_id, "revoked": True},
        as_json=as_json,
        text=f"revoked {invitation_id}",
    )
