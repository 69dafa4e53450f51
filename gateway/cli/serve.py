"""``gateway serve``: run the gateway under Granian."""

from __future__ import annotations

import asyncio

import click
from granian import Granian
from granian.constants import Interfaces, Loops, RuntimeModes
from granian.log import LogLevels

from gateway.cli._base import cli, settings
from gateway.cli.keys import after_key_change
from gateway.store import open_store
from gateway.tokens import ensure_keystore, in_database
from gateway.web import load_storage


@cli.command()
def serve() -> None:
    """Run the gateway on GATEWAY_HOST:GATEWAY_PORT.

    The embedded SQLite store is created and migrated on first start; a PostgreSQL store must be
    migrated with `gateway db upgrade` first.
    """
    config = settings()
    # Checked here, in one line, rather than as a traceback in every worker's start-up.
    load_storage(config)

    async def prepare() -> None:
        engine = await open_store(config)
        await engine.dispose()

    asyncio.run(prepare())
    if ensure_keystore(config):
        where = "the store" if in_database(config) else config.keys_dir
        click.echo(f"gateway: created a new keystore in {where}", err=True)
        after_key_change(config)
    click.echo(
        f"gateway: serving on http://{config.host}:{config.port} "
        f"({config.workers} worker{'s' if config.workers > 1 else ''})",
        err=True,
    )
    # Granian measured 1.4-1.9x the requests per second of uvicorn (uvloop + httptools) on a
    # trivial Litestar endpoint here; see README.md, "Server".
    Granian(
        target="gateway.web.app:create_app_from_env",
        factory=True,
        address=config.host,
        port=config.port,
        interface=Interfaces.ASGI,
        workers=config.workers,
        loop=Loops.auto,
        # For ASGI Granian's `auto` is the multi-threaded Rust runtime; one thread per worker
        # hands each request to Python with fewer thread switches. No websockets: neither the
        # gateway nor PostgREST serves any, and Granian then skips the upgrade check. Measured
        # (gateway CPU per proxied 1-row GET, wrk -c16, medians of 3-4 interleaved rounds, on
        # a 2-core machine busy with other work): mt 465-468 µs, st 432-450, st without
        # websockets 411; HTTP/1 only and a smaller backpressure made no difference beyond the
        # noise, so they stay at Granian's defaults (docs/benchmarks.md, "Granian settings").
        runtime_mode=RuntimeModes.st,
        websockets=False,
        log_level=LogLevels(config.log_level),
        log_access=False,
    ).serve()
