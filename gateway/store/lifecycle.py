"""Open the store for a command or the server: reachable, and migrated to the newest revision."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.errors import StoreUnavailable
from gateway.settings import Settings
from gateway.store.engine import make_engine
from gateway.store.migrate import is_up_to_date, upgrade


class StoreNotMigrated(StoreUnavailable):
    code = "store_not_migrated"


def describe_url(url: str) -> str:
    """The store URL with any password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


async def open_store(settings: Settings, *, migrate_embedded: bool = True) -> AsyncEngine:
    """Return an engine whose store is reachable and at the newest migration.

    The embedded SQLite store is created and migrated on first use. A PostgreSQL store is
    migrated only by ``gateway db upgrade``: schema changes on a shared server are an operator's
    decision, so an outdated one is refused with the command to run.
    """
    engine = make_engine(settings)
    try:
        if settings.is_sqlite and migrate_embedded:
            # The engine creates the file and its folders, for the owner only, on connect.
            await upgrade(engine, settings)
        elif not await is_up_to_date(engine):
            raise StoreNotMigrated(
                f"The store at {describe_url(settings.database_url)} is not migrated to this "
                "version of the gateway; run `gateway db upgrade`."
            )
    except StoreUnavailable:
        await engine.dispose()
        raise
    except (OSError, SQLAlchemyError) as exc:
        await engine.dispose()
        raise StoreUnavailable(
            f"Cannot reach the store at {describe_url(settings.database_url)}: {_first_line(exc)}"
        ) from None
    return engine


async def migrate_store(settings: Settings) -> bool:
    """``gateway db upgrade``: apply every pending migration; True when there were any."""
    engine = make_engine(settings)
    try:
        return await upgrade(engine, settings)
    except (OSError, SQLAlchemyError) as exc:
        raise StoreUnavailable(
            f"Cannot migrate the store at {describe_url(settings.database_url)}: {_first_line(exc)}"
        ) from None
    finally:
        await engine.dispose()


async def ping_store(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    text_ = str(original).strip().splitlines()
    return text_[0] if text_ else type(original).__name__
