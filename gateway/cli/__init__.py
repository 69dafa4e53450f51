"""The ``gateway`` command: one module per command group, each a thin call into a feature."""

from __future__ import annotations

from gateway.cli import (  # noqa: F401  (importing a module registers its commands)
    admin_keys,
    db,
    dev,
    invitations,
    keys,
    members,
    orgs,
    postgrest,
    serve,
    storage,
    users,
)
from gateway.cli._base import cli


def main() -> None:
    cli()


__all__ = ["cli", "main"]
