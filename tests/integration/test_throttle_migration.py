"""Migration b51e0d7c2a94 (throttling per address) keeps the locks in force, both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from sqlalchemy import Connection, text

from gateway.settings import Settings
from gateway.store.engine import make_engine
from gateway.store.migrate import alembic_config

BEFORE = "3e5d7a91c0b4"
LOCKED_UNTIL = datetime(2030, 1, 1, tzinfo=UTC)


async def run_alembic(settings: Settings, action: str, revision: str) -> None:
    def migrate(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    if settings.is_sqlite:
        Path(settings.database_url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings)
    try:
        if not settings.is_sqlite:
            async with engine.begin() as connection:
                await connection.execute(
                    text(f'CREATE SCHEMA IF NOT EXISTS "{settings.database_schema}"')
                )
        async with engine.begin() as connection:
            await connection.run_sync(migrate)
    finally:
        await engine.dispose()


async def query(settings: Settings, statement: str, **values: object) -> list[tuple[object, ...]]:
    engine = make_engine(settings)
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(statement), values)
            return [tuple(row) for row in result.all()] if result.returns_rows else []
    finally:
        await engine.dispose()


async def test_an_email_lock_in_force_survives_the_upgrade_as_its_ceiling_and_the_downgrade(
    store_settings: Settings,
) -> None:
    await run_alembic(store_settings, "upgrade", BEFORE)
    now = datetime.now(UTC)
    await query(
        store_settings,
        "INSERT INTO login_throttles (email_key, failures, window_started_at, locked_until, "
        "lockouts, last_lockout_at) VALUES ('ada@example.com', 0, :now, :until, 1, :now)",
        now=now,
        until=LOCKED_UNTIL,
    )

    await run_alembic(store_settings, "upgrade", "head")
    upgraded = await query(
        store_settings, "SELECT email_key, client_key, lockouts FROM login_throttles"
    )
    known = await query(store_settings, "SELECT count(*) FROM login_known_addresses")
    await run_alembic(store_settings, "downgrade", BEFORE)
    downgraded = await query(store_settings, "SELECT email_key, lockouts FROM login_throttles")

    assert upgraded == [("ada@example.com", "*", 1)]
    assert known == [(0,)]
    assert downgraded == [("ada@example.com", 1)]
    assert now - timedelta(minutes=1) < LOCKED_UNTIL
