"""What the sign-in, refresh and switch transactions use, as one narrow interface.

The web layer's ``Runtime`` provides it; the sessions package never sees the rest of it (the
HTTP client, the revocation feed, the proxy's token cache).
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.accounts.passwords import PasswordHashing
from gateway.settings import Settings
from gateway.tokens.watcher import KeyRingHolder


class SessionServices(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def store(self) -> async_sessionmaker[AsyncSession]: ...

    @property
    def passwords(self) -> PasswordHashing: ...

    @property
    def keys(self) -> KeyRingHolder: ...

    @property
    def dummy_hash(self) -> str: ...

    async def refresh_key(self) -> bytes: ...
