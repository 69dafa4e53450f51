"""The async engine and session factory for the gateway's own store."""

from __future__ import annotations

import re
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from gateway.errors import InvalidInput
from gateway.settings import Settings
from gateway.store._sqlite_file import prepare_sqlite_file, sqlite_file_of


def make_engine(settings: Settings, **kwargs: Any) -> AsyncEngine:
    """Build the engine for ``GATEWAY_DATABASE_URL``.

    On PostgreSQL every connection's ``search_path`` is the gateway's own schema, so its tables
    never sit in a schema PostgREST exposes. On SQLite foreign keys are switched on (they are off
    by default there) and writers wait for each other instead of failing at once; its file is
    created for its owner only before SQLite opens it (see sqlite_file.py).
    """
    url = make_url(settings.database_url)
    # Parameters never appear in error messages or logs: they hold password hashes and emails.
    kwargs.setdefault("hide_parameters", True)
    if settings.is_sqlite:
        engine = create_async_engine(url, connect_args={"timeout": 15}, **kwargs)
        database_file = sqlite_file_of(settings.database_url)
        if database_file is not None:
            path = database_file

            def before_connect(*_: Any) -> None:
                prepare_sqlite_file(path)

            event.listen(engine.sync_engine, "do_connect", before_connect)
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        return engine
    server_settings = {
        "search_path": settings.database_schema,
        "application_name": "gateway",
    }
    return create_async_engine(
        url,
        connect_args={"server_settings": server_settings, "timeout": 10},
        pool_pre_ping=True,
        **kwargs,
    )


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA busy_timeout = 15000")
    cursor.close()


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


_DRIVER_SUFFIX: Final = re.compile(r"^(postgres(?:ql)?)\+[A-Za-z0-9_]+://")


def asyncpg_dsn(url: str) -> str:
    """``url`` as asyncpg takes it: a SQLAlchemy ``postgresql+asyncpg://`` loses its ``+asyncpg``.

    Raises:
        InvalidInput: ``url`` is not a PostgreSQL URL.
    """
    dsn = _DRIVER_SUFFIX.sub(r"\1://", url, count=1)
    if not dsn.startswith(("postgresql://", "postgres://")):
        raise InvalidInput("the PostgREST notification URL must be a postgresql:// URL")
    return dsn
