"""Alembic environment: migrations run on a connection the gateway hands over (see migrate.py)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from gateway.store.models import Base

config = context.config


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_settings() -> None:
    # Used by the plain ``alembic`` command (developers writing a new revision).
    from gateway.settings import load_settings
    from gateway.store.engine import make_engine

    engine = make_engine(load_settings())
    async with engine.begin() as connection:
        await connection.run_sync(run_on)
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `gateway db upgrade`")

shared = config.attributes.get("connection")
if shared is not None:
    run_on(shared)
else:
    asyncio.run(run_from_settings())
