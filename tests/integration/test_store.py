"""The store: migrations and constraints on SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from gateway.settings import Settings
from gateway.store.engine import make_engine, make_sessionmaker
from gateway.store.lifecycle import migrate_store
from gateway.store.migrate import current_revision, head_revision
from gateway.store.models import Membership, Organization, Session, User

TABLES = {"organizations", "users", "memberships", "sessions", "refresh_tokens", "auth_events"}


async def table_names(settings: Settings) -> set[str]:
    engine = make_engine(settings)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def test_migrations_create_every_table_at_the_head_revision(
    store_settings: Settings,
) -> None:
    await migrate_store(store_settings)

    assert await table_names(store_settings) >= TABLES
    engine = make_engine(store_settings)
    assert await current_revision(engine) == head_revision()
    await engine.dispose()


async def test_migrating_twice_changes_nothing(migrated_store: Settings) -> None:
    await migrate_store(migrated_store)

    engine = make_engine(migrated_store)
    assert await current_revision(engine) == head_revision()
    await engine.dispose()


@pytest.mark.postgres
async def test_on_postgresql_the_tables_live_in_their_own_schema_not_public(
    postgres_url: str,
) -> None:
    settings = Settings(
        database_url=postgres_url.replace("postgresql://", "postgresql+asyncpg://"),
        database_schema="gw_own_schema",
    )
    await migrate_store(settings)

    engine = make_engine(settings)
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_name = ANY(:names) AND table_schema IN ('public', 'gw_own_schema')"
            ),
            {"names": sorted(TABLES)},
        )
        found = {(schema, name) for schema, name in rows}
    await engine.dispose()
    assert found == {("gw_own_schema", name) for name in TABLES}


@pytest.mark.postgres
async def test_concurrent_upgrades_of_one_postgresql_store_take_turns(postgres_url: str) -> None:
    settings = Settings(
        database_url=postgres_url.replace("postgresql://", "postgresql+asyncpg://"),
        database_schema="gw_concurrent",
    )

    await asyncio.gather(*(migrate_store(settings) for _ in range(4)))

    assert await table_names(settings) >= TABLES


async def insert(settings: Settings, *rows: object) -> None:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine).begin() as db:
            for row in rows:
                db.add(row)
                await db.flush()
    finally:
        await engine.dispose()


def user(user_id: int, email_key: str, **fields: object) -> User:
    values: dict[str, object] = {
        "id": user_id,
        "email": email_key,
        "email_normalized": email_key,
        "password_hash": "$argon2id$x",
        "db_role": "authenticated",
    }
    values.update(fields)
    return User(**values)


async def test_the_store_refuses_two_users_with_one_normalised_email(
    migrated_store: Settings,
) -> None:
    await insert(migrated_store, user(2**40 + 1, "ada@example.com"))

    with pytest.raises(IntegrityError):
        await insert(migrated_store, user(2**40 + 2, "ada@example.com"))


async def test_the_store_refuses_an_unknown_user_status(migrated_store: Settings) -> None:
    with pytest.raises(IntegrityError):
        await insert(migrated_store, user(2**40 + 3, "eve@example.com", status="deleted"))


async def test_the_store_keeps_one_membership_per_user_and_organization(
    migrated_store: Settings,
) -> None:
    organization = Organization(id=2**41, name="Acme")
    await insert(migrated_store, organization, user(2**40 + 4, "bob@example.com"))
    await insert(
        migrated_store, Membership(user_id=2**40 + 4, organization_id=2**41, role="org_admin")
    )

    with pytest.raises(IntegrityError):
        await insert(
            migrated_store, Membership(user_id=2**40 + 4, organization_id=2**41, role="org_client")
        )
    with pytest.raises(IntegrityError):
        await insert(
            migrated_store, Membership(user_id=2**40 + 4, organization_id=2**42, role="org_admin")
        )


async def test_timestamps_come_back_timezone_aware_in_utc(migrated_store: Settings) -> None:
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    await insert(
        migrated_store,
        user(2**40 + 5, "tz@example.com"),
        Session(id="s1", user_id=2**40 + 5, expires_at=expires.astimezone(UTC) + timedelta(0)),
    )

    engine = make_engine(migrated_store)
    async with make_sessionmaker(engine)() as db:
        session = await db.get(Session, "s1")
    await engine.dispose()
    assert session is not None
    assert session.expires_at == expires
    assert session.expires_at.tzinfo is not None
    assert session.created_at.tzinfo is not None
