"""What one gateway process holds while it runs: the settings, the store and the hashing pool."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.accounts.passwords import PasswordHashing
from gateway.settings import Settings
from gateway.store.engine import make_engine, make_sessionmaker


@dataclass(slots=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    passwords: PasswordHashing

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        # No connection is made here: a store that is down at start-up makes /readyz answer 503
        # until it comes back, instead of a crash loop.
        engine = make_engine(settings)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            passwords=PasswordHashing(workers=settings.password_hash_workers),
        )

    async def stop(self) -> None:
        self.passwords.close()
        await self.engine.dispose()
