"""The embedded SQLite store holds password hashes and the server secret: only its owner reads it.

Every test runs under the common umask 022, which would leave a file made with the default
mode readable by every local user.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.settings import Settings
from gateway.store.lifecycle import migrate_store, open_store


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def sqlite_settings(database: Path) -> Settings:
    return Settings(database_url=f"sqlite+aiosqlite:///{database}")


async def write_something(engine: AsyncEngine) -> None:
    # A write while the engine is open: the -wal and -shm files exist until the last close.
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE server_secrets SET name = name"))


def test_store_files_of_a_new_store_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "state" / "store" / "gateway.db"

    async def open_write_and_look() -> dict[str, int]:
        engine = await open_store(sqlite_settings(database))
        try:
            await write_something(engine)
            return {path.name: mode(path) for path in database.parent.iterdir()}
        finally:
            await engine.dispose()

    files = asyncio.run(open_write_and_look())

    assert files == {"gateway.db": 0o600, "gateway.db-wal": 0o600, "gateway.db-shm": 0o600}
    assert mode(database.parent) == 0o700
    assert mode(database.parent.parent) == 0o700  # every folder the gateway made


def test_store_files_made_by_db_upgrade_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    database = tmp_path / "fresh" / "gateway.db"

    asyncio.run(migrate_store(sqlite_settings(database)))

    assert mode(database) == 0o600
    assert mode(database.parent) == 0o700


def test_store_files_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    # The working folder (the default ./gateway.db) is the operator's, not the gateway's.
    tmp_path.chmod(0o755)
    database = tmp_path / "gateway.db"

    asyncio.run(migrate_store(sqlite_settings(database)))

    assert mode(tmp_path) == 0o755
    assert mode(database) == 0o600


def test_store_files_a_store_readable_by_others_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "gateway.db"
    asyncio.run(migrate_store(sqlite_settings(database)))
    database.chmod(0o644)

    async def open_and_close() -> None:
        engine = await open_store(sqlite_settings(database))
        await engine.dispose()

    with caplog.at_level(logging.WARNING, logger="gateway.store"):
        asyncio.run(open_and_close())

    assert any(
        str(database) in record.getMessage() and "chmod 600" in record.getMessage()
        for record in caplog.records
    )
