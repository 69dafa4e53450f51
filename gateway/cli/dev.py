"""``gateway dev``: the whole stack locally, without Docker, until Ctrl-C."""

from __future__ import annotations

import click

from gateway.cli._base import cli, settings
from gateway.devstack import DevStackOptions, run_dev_stack


@cli.command()
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="The gateway's port on 127.0.0.1 (default GATEWAY_PORT, 8000).",
)
def dev(port: int | None) -> None:
    """Run PostgreSQL, PostgREST and the gateway for local development; Ctrl-C stops them all.

    PostgreSQL is GATEWAY_DEV_DATABASE_URL, else the server on 127.0.0.1:5432 (database
    gateway_dev), else a throwaway cluster. PostgREST is GATEWAY_POSTGREST_BIN, else `postgrest`
    on PATH, else downloaded once. The store and keys are the settings' (./gateway.db, ./keys),
    so other commands run in this folder act on the dev stack. Not for production: that is
    `gateway serve`.
    """
    config = settings()
    options = DevStackOptions(
        port=port or config.port,
        database_url=config.dev_database_url,
        postgrest_bin=config.postgrest_bin,
        email=config.dev_email,
        password=config.dev_password,
    )
    run_dev_stack(config, options, lambda line: click.echo(line))
