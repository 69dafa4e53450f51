"""What one gateway process holds while it runs: settings, store, hashing pool, signing keys."""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass, field

from litestar.datastructures import State
from litestar.di import NamedDependency
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.accounts import PasswordHashing
from gateway.errors import StoreUnavailable
from gateway.mail import Mailer, Outbox
from gateway.metrics import metrics
from gateway.proxy import MountDependencies, VerifiedTokens, make_client_session
from gateway.revocation import Revocations
from gateway.sessions import PasswordCheck, TokenIssuer
from gateway.settings import Settings
from gateway.storage import StorageConfig, load_storage_config
from gateway.store import ServerSecret, make_engine, make_sessionmaker
from gateway.tokens import KeyRingHolder, ensure_keystore
from gateway.upstream import UpstreamClient

REFRESH_SUCCESSOR_KEY = "refresh_successor_key"


@dataclass(slots=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    # The store's transaction factory; not "sessions": here a session is a signed-in user's.
    store: async_sessionmaker[AsyncSession]
    passwords: PasswordHashing
    keys: KeyRingHolder
    issuer: TokenIssuer
    dummy_hash: str
    # The pooled client to PostgREST (the mount's, and /readyz's).
    http: UpstreamClient
    revocations: Revocations
    # Account mail (verification, reset, invitations); made once, its templates checked at start.
    mailer: Mailer
    # Mail sent after the answer (password reset), so its timing tells the client nothing.
    outbox: Outbox
    # Parts of the above (and the mount's token cache), as the PostgREST mount gets them.
    mount_dependencies: MountDependencies
    # The buckets of GATEWAY_STORAGE_CONFIG; None when it is unset.
    storage: StorageConfig | None = None
    _refresh_key: bytes | None = field(default=None)

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        # No connection to the store is made here: a store that is down at start-up makes
        # /readyz answer 503 until it comes back, instead of a crash loop. The one exception is
        # GATEWAY_KEYSTORE=database: the signing keys are read from the store, and a gateway
        # without them cannot start.
        mailer = Mailer(settings=settings)
        storage = load_storage(settings)
        engine = make_engine(settings)
        passwords = PasswordHashing(
            workers=settings.password_hash_workers, niceness=settings.password_hash_niceness
        )
        await asyncio.to_thread(ensure_keystore, settings)
        keys = KeyRingHolder(settings)
        await keys.start()
        # Unknown emails are verified against this, so that they cost what a real account costs;
        # made with today's parameters, it can never match a password anyone knows.
        dummy_hash = await passwords.hash(secrets.token_urlsafe(32))
        store = make_sessionmaker(engine)
        # Until its first read, a feed's lag counts from its start (a store down at start-up
        # shows as a growing lag, not as no value).
        metrics().feed_read()
        revocations = Revocations(settings, store, on_read=metrics().feed_read)
        await revocations.start()
        http = make_client_session(settings)
        return cls(
            settings=settings,
            engine=engine,
            store=store,
            passwords=passwords,
            keys=keys,
            issuer=TokenIssuer(settings=settings, keys=keys),
            dummy_hash=dummy_hash,
            http=http,
            revocations=revocations,
            mailer=mailer,
            outbox=Outbox(mailer),
            mount_dependencies=MountDependencies(
                keys=keys,
                tokens=VerifiedTokens(
                    size=settings.token_cache_size,
                    issuer=settings.issuer,
                    audience=settings.audience,
                    allowed_roles=settings.allowed_roles,
                    anon_role=settings.anon_role,
                ),
                revocations=revocations,
                http=http,
                storage=storage,
            ),
            storage=storage,
        )

    @property
    def password_check(self) -> PasswordCheck:
        """Read per sign-in, so that it always uses the hashing pool in service."""
        return PasswordCheck(hashing=self.passwords, dummy_hash=self.dummy_hash)

    async def refresh_key(self) -> bytes:
        """The server secret that derives refresh token successors (made by a migration)."""
        if self._refresh_key is None:
            async with self.store() as db:
                value = await db.scalar(
                    select(ServerSecret.value).where(ServerSecret.name == REFRESH_SUCCESSOR_KEY)
                )
            if value is None:
                raise StoreUnavailable(
                    "The store lacks its server secret; run `gateway db upgrade`."
                )
            self._refresh_key = bytes.fromhex(value)
        return self._refresh_key

    async def stop(self) -> None:
        # Mail already promised to a client goes out before the process ends.
        await self.outbox.drain(within=self.settings.smtp_timeout * 3)
        await self.revocations.stop()
        await self.http.close()
        await self.keys.stop()
        self.passwords.close()
        await self.engine.dispose()


def runtime_of(state: State) -> Runtime:
    """The process's Runtime, set by the application's lifespan: the one way the web layer
    reaches it (route handlers get it injected as ``runtime``)."""
    runtime: Runtime = state.runtime
    return runtime


#: A route handler's ``runtime`` parameter, provided by :func:`runtime_of` at the app level.
RuntimeDep = NamedDependency[Runtime]


def load_storage(settings: Settings) -> StorageConfig | None:
    """The buckets, or None without GATEWAY_STORAGE_CONFIG; credentials come from the process
    environment, read once here."""
    if settings.storage_config is None:
        return None
    return load_storage_config(
        settings.storage_config,
        environ=os.environ,
        max_batch=settings.storage_max_batch,
        max_rows=settings.storage_max_rows,
    )
