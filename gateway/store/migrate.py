"""Apply the store's Alembic migrations from code (``gateway db upgrade``, ``gateway serve``)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Two processes migrating one PostgreSQL database at once take turns on this advisory lock.
_MIGRATION_LOCK_KEY = 0x6761_7465_7761_79  # "gateway"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


@cache
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def is_up_to_date(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == head_revision()


async def upgrade(engine: AsyncEngine, settings: Settings) -> bool:
    """Bring the store to the newest revision; safe to run from several processes at once.

    Returns:
        True when migrations were applied, False when the store was already at the newest.
    """
    async with engine.begin() as connection:
        if not settings.is_sqlite:
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
            # The schema name was checked against a plain identifier pattern in Settings.
            await connection.execute(
                text(f'CREATE SCHEMA IF NOT EXISTS "{settings.database_schema}"')
            )
        before = await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )
        await connection.run_sync(_upgrade_on, alembic_config())
        return before != head_revision()


def _upgrade_on(connection: Connection, config: Config) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
