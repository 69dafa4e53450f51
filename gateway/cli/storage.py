"""``gateway storage``: check the buckets, and presigned URLs for operators."""

from __future__ import annotations

import asyncio
import json
import sys

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts import get_membership, get_user_by_email
from gateway.cli._base import cli, emit, fail, in_transaction, json_option, settings
from gateway.sessions import UserSuspended
from gateway.storage import Grantee, check_storage, checks_as_json, presign
from gateway.store import ID_MAX
from gateway.web import load_storage


@cli.group()
def storage() -> None:
    """Object storage: the buckets of GATEWAY_STORAGE_CONFIG."""


@storage.command()
@json_option
def check(as_json: bool) -> None:
    """Check the configuration and its credentials, and send a signed HEAD to each bucket.

    Exit code 1 when a check fails; an unreachable bucket is a failed check.
    """
    config = settings()
    checks = asyncio.run(check_storage(lambda: load_storage(config)))
    if as_json:
        click.echo(json.dumps(checks_as_json(checks), sort_keys=True))
    else:
        for result in checks:
            click.echo(f"{'ok  ' if result.ok else 'FAIL'} {result.name}: {result.detail}")
    if not all(result.ok for result in checks):
        sys.exit(1)


@storage.command("presign")
@click.argument("bucket")
@click.argument("key")
@click.option("--as", "email", required=True, help="The user the URL is for (their email).")
@click.option(
    "--org",
    "organization_id",
    type=click.IntRange(1, ID_MAX),
    required=True,
    help="The organization they act in; their role there decides what is allowed.",
)
@click.option(
    "--operation",
    type=click.Choice(["get", "put", "delete"]),
    default="get",
    show_default=True,
    help="put gives a presigned POST (URL and form fields).",
)
@click.option("--expires-in", type=click.IntRange(1), help="Seconds (default 900, capped).")
@click.option("--content-type", help="The upload's media type (required for put).")
@json_option
def presign_command(
    bucket: str,
    key: str,
    email: str,
    organization_id: int,
    operation: str,
    expires_in: int | None,
    content_type: str | None,
    as_json: bool,
) -> None:
    """A presigned URL for KEY in BUCKET, exactly as that user would get it from the endpoint."""
    configured = load_storage(settings())
    if configured is None:
        fail("GATEWAY_STORAGE_CONFIG is not set: no buckets are configured")

    async def grantee(db: AsyncSession) -> Grantee:
        user = await get_user_by_email(db=db, email=email)
        if user.status != "active":
            raise UserSuspended("This account is suspended.")
        membership = await get_membership(db=db, user=user, organization_id=organization_id)
        return Grantee(user_id=user.id, organization_id=organization_id, role=membership.role)

    [url] = presign(
        configured,
        grantee=in_transaction(grantee),
        bucket=bucket,
        operation=operation,
        keys=[key],
        expires_in=expires_in,
        content_type=content_type,
    )
    document: dict[str, object] = {
        "key": url.key,
        "url": url.url,
        "method": url.method,
        "expires_at": url.expires_at,
    }
    if url.fields is not None:
        document["fields"] = url.fields
    emit(document, as_json=as_json, text=url.url)
