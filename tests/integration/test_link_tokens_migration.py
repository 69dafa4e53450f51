"""Migration c7e4a1f3d582 (link tokens, verified email) on SQLite and PostgreSQL, both ways."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect

from gateway.settings import Settings
from gateway.store.engine import make_engine
from tests.integration.test_throttle_migration import query, run_alembic

BEFORE = "9d2c4b6e8f10"
CREATED = datetime(2026, 6, 1, 8, tzinfo=UTC)


def as_utc(value: object) -> datetime:
    """A raw timestamp as UTC: asyncpg gives an aware datetime, SQLite's text query a string."""
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return stamp.astimezone(UTC) if stamp.tzinfo else stamp.replace(tzinfo=UTC)


async def columns_and_tables(settings: Settings) -> tuple[set[str], set[str]]:
    engine = make_engine(settings)
    try:
        async with engine.connect() as connection:

            def read(sync: object) -> tuple[set[str], set[str]]:
                inspector = inspect(sync)
                users = {column["name"] for column in inspector.get_columns("users")}
                return users, set(inspector.get_table_names())

            return await connection.run_sync(read)
    finally:
        await engine.dispose()


async def test_existing_users_are_verified_as_of_their_creation_and_downgrade_keeps_them(
    store_settings: Settings,
) -> None:
    await run_alembic(store_settings, "upgrade", BEFORE)
    await query(
        store_settings,
        "INSERT INTO organizations (id, name, created_at) VALUES (1, 'Acme', :at)",
        at=CREATED,
    )
    await query(
        store_settings,
        "INSERT INTO users (id, email, email_normalized, password_hash, status, db_role, "
        "created_at, updated_at) VALUES (7, 'ada@example.com', 'ada@example.com', 'x', "
        "'active', 'authenticated', :at, :at)",
        at=CREATED,
    )
    await query(
        store_settings,
        "INSERT INTO memberships (user_id, organization_id, role, created_at) "
        "VALUES (7, 1, 'org_admin', :at)",
        at=CREATED,
    )

    await run_alembic(store_settings, "upgrade", "head")
    verified = await query(store_settings, "SELECT email_verified_at FROM users")
    upgraded_columns, upgraded_tables = await columns_and_tables(store_settings)
    await run_alembic(store_settings, "downgrade", BEFORE)
    downgraded_columns, downgraded_tables = await columns_and_tables(store_settings)
    memberships = await query(store_settings, "SELECT user_id, role FROM memberships")

    assert as_utc(verified[0][0]) == CREATED
    assert "email_verified_at" in upgraded_columns
    assert "link_tokens" in upgraded_tables
    assert "email_verified_at" not in downgraded_columns
    assert "link_tokens" not in downgraded_tables
    # Dropping the column must not have dropped (and so cascaded from) the users table.
    assert memberships == [(7, "org_admin")]
