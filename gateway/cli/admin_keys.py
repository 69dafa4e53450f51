"""``gateway admin-keys``: keys for the platform admin API (/admin)."""

from __future__ import annotations

from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts import ADMIN_SCOPES, create_admin_key, list_admin_keys, revoke_admin_key
from gateway.cli._base import cli, emit, in_transaction, json_option
from gateway.store import AdminKey, utcnow


@cli.group("admin-keys")
def admin_keys() -> None:
    """Keys for the admin API: shown once at creation, stored as a hash, revocable."""


def key_document(key: AdminKey) -> dict[str, Any]:
    return {
        "admin_key_id": key.id,
        "name": key.name,
        "scopes": list(key.scopes),
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@admin_keys.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(ADMIN_SCOPES),
    help="What the key may do (repeat for several).",
)
@json_option
def create(name: str, scopes: tuple[str, ...], as_json: bool) -> None:
    """Create a key NAME; the key itself is printed once and never again."""

    async def work(db: AsyncSession) -> dict[str, Any]:
        record, key = await create_admin_key(db, name=name, scopes=list(scopes), now=utcnow())
        return {**key_document(record), "key": key}

    document = in_transaction(work)
    emit(
        document,
        as_json=as_json,
        text=f"admin key {document['admin_key_id']} ({', '.join(document['scopes'])}): "
        f"{document['key']}\nstore it now: it is not shown again",
    )


@admin_keys.command("list")
@json_option
def list_keys(as_json: bool) -> None:
    """Every key, revoked ones included (never the keys themselves)."""

    async def work(db: AsyncSession) -> dict[str, Any]:
        return {"admin_keys": [key_document(key) for key in await list_admin_keys(db)]}

    document = in_transaction(work)
    lines = [
        f"{key['admin_key_id']} {key['name']} [{', '.join(key['scopes'])}]"
        + (" revoked" if key["revoked_at"] else "")
        for key in document["admin_keys"]
    ]
    emit(document, as_json=as_json, text="\n".join(lines) or "no admin keys")


@admin_keys.command("revoke")
@click.argument("admin_key_id", type=click.IntRange(1))
@json_option
def revoke(admin_key_id: int, as_json: bool) -> None:
    """Revoke the key ADMIN_KEY_ID: the next request with it is refused."""

    async def work(db: AsyncSession) -> dict[str, Any]:
        return key_document(await revoke_admin_key(db, key_id=admin_key_id, now=utcnow()))

    document = in_transaction(work)
    emit(document, as_json=as_json, text=f"admin key {admin_key_id} is revoked")
