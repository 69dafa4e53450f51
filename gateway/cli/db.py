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
    asyncio.run(migrate_store(config))
    click.echo(f"store at {describe_url(config.database_url)} is up to date")
