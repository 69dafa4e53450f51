"""The ``gateway`` command: one module per command group, each a thin call into a feature."""

from __future__ import annotations

from gateway.cli import db, keys, members, orgs, serve, users  # noqa: F401  (registers the commands)
from gateway.cli._base import cli


def main() -> None:
    cli()


__all__ = ["cli", "main"]
