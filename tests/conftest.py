"""Shared fixtures: a clean environment per test, and a store on SQLite or a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.settings import Settings
from gateway.store.engine import make_engine, make_sessionmaker
from gateway.store.lifecycle import migrate_store
from gateway.store.models import Base
from tests.support.postgres import PostgresMissing, fresh_database, postgres_admin_url


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No GATEWAY_* variable or .env of the developer's leaks into a test."""
    for name in list(os.environ):
        if name.startswith("GATEWAY_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of its own for this test run on a real PostgreSQL (asyncpg-style URL)."""
    try:
        with postgres_admin_url() as admin_url:
            name = f"gateway_test_{secrets.token_hex(4)}"
            with fresh_database(admin_url, name) as url:
                yield url
    except PostgresMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def sqlalchemy_url(asyncpg_url: str) -> str:
    return asyncpg_url.replace("postgresql://", "postgresql+asyncpg://", 1)


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The GATEWAY_* variables of an empty store: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/store/gateway.db"}
    url = request.getfixturevalue("postgres_url")
    return {
        "GATEWAY_DATABASE_URL": sqlalchemy_url(url),
        "GATEWAY_DATABASE_SCHEMA": f"gw_{secrets.token_hex(5)}",
    }


def settings_from(env: dict[str, str], **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        name.removeprefix("GATEWAY_").lower(): value for name, value in env.items()
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def store_settings(store_env: dict[str, str]) -> Settings:
    return settings_from(store_env)


@pytest.fixture
def migrated_store(store_settings: Settings) -> Settings:
    asyncio.run(migrate_store(store_settings))
    return store_settings


def dump_store(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every gateway table, to prove that a refused command changed nothing."""

    async def read() -> dict[str, list[tuple[Any, ...]]]:
        engine = make_engine(settings)
        try:
            async with make_sessionmaker(engine)() as db:
                tables = {}
                for table in Base.metadata.sorted_tables:
                    rows = (await db.execute(select(table))).all()
                    tables[table.name] = sorted((tuple(row) for row in rows), key=repr)
                return tables
        finally:
            await engine.dispose()

    return asyncio.run(read())
