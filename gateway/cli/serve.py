"""``gateway serve``: run the gateway under Granian."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import click
from granian import Granian
from granian.constants import Interfaces, Loops, RuntimeModes
from granian.log import LogLevels

from gateway.cli._base import cli, fail, settings
from gateway.cli.keys import after_key_change
from gateway.metrics import MULTIPROC_ENV, MetricsListener, fresh_multiprocess_dir
from gateway.settings import Settings
from gateway.store import open_store
from gateway.tokens import ensure_keystore, in_database
from gateway.web import configure_logging, granian_log_config, key_families, load_storage

logger = logging.getLogger("gateway.serve")


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
    configure_logging(config)
    if ensure_keystore(config):
        where = "the store" if in_database(config) else config.keys_dir
        _say(config, f"gateway: created a new keystore in {where}")
        after_key_change(config)
    _say(
        config,
        f"gateway: serving on http://{config.host}:{config.port} "
        f"({config.workers} worker{'s' if config.workers > 1 else ''})",
    )
    with _worker_metrics(), _metrics_listener(config):
        _run_granian(config)


def _run_granian(
    config: Settings,
) -> None:  # Granian measured 1.4-1.9x the requests per second of uvicorn (uvloop + httptools) on a
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
        log_dictconfig=granian_log_config(config.log_format),
    ).serve()


def _say(config: Settings, line: str) -> None:
    # GATEWAY_LOG_FORMAT=json: every line of the process is a JSON object, these two included.
    if config.log_format == "json":
        logger.info(line.removeprefix("gateway: "))
    else:
        click.echo(line, err=True)


@contextmanager
def _worker_metrics() -> Iterator[None]:
    """Every worker writes its metrics to files in a fresh private directory (prometheus_client's
    multiprocess mode), so a scrape of any worker, or of the metrics listener, sums them all.
    Set before Granian forks the workers; removed when the server stops."""
    directory = fresh_multiprocess_dir()
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = str(directory)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def _metrics_listener(config: Settings) -> Iterator[None]:
    """GATEWAY_METRICS_PORT: /metrics on a listener of its own, in this process (no token)."""
    if config.metrics_port is None:
        yield
        return
    listener = MetricsListener(config.metrics_host, config.metrics_port, key_families(config))
    try:
        listener.start()
    except OSError as exc:
        fail(
            f"cannot listen on GATEWAY_METRICS_HOST:GATEWAY_METRICS_PORT "
            f"({config.metrics_host}:{config.metrics_port}): {exc.strerror or type(exc).__name__}"
        )
    _say(config, f"gateway: metrics on http://{config.metrics_host}:{config.metrics_port}/metrics")
    try:
        yield
    finally:
        listener.stop()
