"""Connections to the database PostgREST serves (which may or may not be the gateway's store)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from gateway.errors import GatewayError, InvalidInput
from gateway.settings import Settings
from gateway.store import asyncpg_dsn

CONNECT_TIMEOUT = 10.0


class PostgrestDatabaseUnavailable(GatewayError):
    code = "postgrest_database_unavailable"
    status = 503


def postgrest_database_url(settings: Settings, override: str | None = None) -> str:
    """``--database-url``, else GATEWAY_POSTGREST_NOTIFY_URL, else a PostgreSQL store."""
    url = override or settings.notify_url
    if not url:
        raise InvalidInput(
            "No PostgreSQL database is known for PostgREST: the store is SQLite. Pass "
            "--database-url or set GATEWAY_POSTGREST_NOTIFY_URL."
        )
    return url


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[asyncpg.Connection]:
    try:
        connection = await asyncpg.connect(asyncpg_dsn(url), timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise PostgrestDatabaseUnavailable(
            f"Cannot connect to PostgREST's database: {exc or type(exc).__name__}"
        ) from None
    try:
        yield connection
    finally:
        await asyncio.shield(connection.close())
