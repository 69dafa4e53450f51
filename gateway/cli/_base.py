"""The root command group, how commands reach the settings and the store, and error reporting."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import GatewayError
from gateway.settings import Settings, SettingsError, load_settings
from gateway.store import make_sessionmaker, open_store

T = TypeVar("T")


def fail(message: str) -> NoReturn:
    """One line on stderr and exit code 1: how every command reports a refusal."""
    click.echo(f"gateway: error: {message}", err=True)
    sys.exit(1)


class GatewayGroup(click.Group):
    """Turns every known failure into one line on stderr instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GatewayError as exc:
            fail(exc.message)
        except SettingsError as exc:
            fail(str(exc))


@click.group(cls=GatewayGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """postgrest-gateway: auth gateway and token issuer in front of PostgREST.

    Settings come from GATEWAY_* environment variables and an optional .env file;
    docs/reference.md lists them all.
    """


def settings() -> Settings:
    """The settings, read once per command invocation."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    if root.obj is None:
        root.obj = load_settings()
    assert isinstance(root.obj, Settings)
    return root.obj


def in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one store transaction: committed when it returns, rolled back on error."""
    config = settings()

    async def main() -> T:
        engine = await open_store(config)
        try:
            async with make_sessionmaker(engine).begin() as db:
                return await work(db)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def read_line_from_stdin(what: str) -> str:
    """One line of stdin without its line ending: `printf '%s\\n' "$PW" | gateway ...`."""
    line = sys.stdin.readline()
    value = line.removesuffix("\n").removesuffix("\r")
    if not value:
        fail(f"no {what} on standard input (pipe it in, one line)")
    return value


def emit(document: dict[str, Any], *, as_json: bool, text: str) -> None:
    """Print the result: one JSON document with ``--json``, else a sentence."""
    if as_json:
        click.echo(json.dumps(document, sort_keys=True))
    else:
        click.echo(text)


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
