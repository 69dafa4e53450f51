"""``gateway db``: the store's schema."""

from __future__ import annotations

import asyncio

import click

from gateway.cli._base import cli, settings
from gateway.store import describe_url, migrate_store


@cli.group()
def db() -> None:
    """The gateway's own store."""


@db.command()
def upgrade() -> None:
    """Apply migrations to GATEWAY_DATABASE_URL."""
    config = settings()
    applied = asyncio.run(migrate_store(config))
    store = describe_url(config.database_url)
    # Saying "up to date" on the run that changed the schema hid the change from operators.
    click.echo(
        f"store at {store}: migrated to the newest version"
        if applied
        else f"store at {store} is already up to date"
    )
