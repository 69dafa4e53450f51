"""No revocation is ever missed: clocks, late commits and restarts cannot let a token through.

The attacker here holds an access token whose session was ended (logout, reuse detection,
suspension). The gateway verifies tokens without the store, so the token stops working only if
the revocation feed (gateway/revocation/feed.py) learns of the end. These tests end sessions
in the ways that used to slip past it: a ``revoked_at`` from a writer whose clock is slow, a
transaction that commits long after it wrote ``revoked_at``, a worker started after the fact.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.revocation import revoke_session
from gateway.revocation._own_writes import EndedSession
from gateway.revocation.feed import Revocations, alive_until
from gateway.settings import Settings
from gateway.store import utcnow
from gateway.store.engine import make_engine, make_sessionmaker
from gateway.store.models import Session
from tests.e2e.conftest import Served, sql
from tests.e2e.test_proxy import bearer, sign_in
from tests.integration.conftest import Client, login
from tests.support.postgrest import PostgREST
from tests.support.server import run_gateway
from tests.support.waiting import wait_for

REFUSAL_DEADLINE = 2.0  # a revocation reaches /rest within 2 s, whatever its timing (docs/proxy.md)
REVOKE = "UPDATE gateway.sessions SET revoked_at = now(), revoke_reason = 'logout' WHERE id = $1"


def sid_of(answer: dict[str, Any]) -> str:
    sid: str = jwt.decode(answer["access_token"], options={"verify_signature": False})["sid"]
    return sid


def status_at_rest(base: str, answer: dict[str, Any]) -> int:
    return httpx.get(f"{base}/rest/projects", headers=bearer(answer)).status_code


@pytest.fixture
def gateway_env(served: Served, postgrest: PostgREST) -> dict[str, str]:
    return {**served.env, "GATEWAY_UPSTREAM_URL": postgrest.url}


@pytest.fixture
def proxied(gateway_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with run_gateway(gateway_env, cwd=tmp_path) as base:
        yield base


def test_a_revocation_written_a_minute_in_the_past_is_refused_at_rest_within_2_s(
    proxied: str, served: Served
) -> None:
    answer = sign_in(proxied)
    assert status_at_rest(proxied, answer) == 200

    # As a replica whose clock is a minute slow would write it, straight into the store.
    sql(
        served.url,
        "UPDATE gateway.sessions SET revoked_at = now() - interval '60 seconds', "
        "revoke_reason = 'logout' WHERE id = $1",
        sid_of(answer),
    )

    waited = wait_for(
        lambda: status_at_rest(proxied, answer) == 401, REFUSAL_DEADLINE, "a 401 at /rest"
    )
    assert waited < REFUSAL_DEADLINE
    refused = httpx.get(f"{proxied}/rest/projects", headers=bearer(answer))
    assert refused.json()["code"] == "session_revoked"


def test_a_revocation_whose_transaction_commits_late_is_refused_at_rest_within_2_s(
    proxied: str, served: Served
) -> None:
    late, early = sign_in(proxied), sign_in(proxied)
    assert status_at_rest(proxied, late) == status_at_rest(proxied, early) == 200

    async def revoke_late() -> None:
        # The transaction writes revoked_at, then is held up (a lock wait, a slow client) for
        # 12 s: longer than any overlap a feed ordered by revoked_at could afford.
        held, other = await asyncpg.connect(served.url), await asyncpg.connect(served.url)
        try:
            async with held.transaction():
                await held.execute(REVOKE, sid_of(late))
                # Meanwhile another revocation commits, and the feed reads past it.
                await other.execute(REVOKE, sid_of(early))
                wait_for(
                    lambda: status_at_rest(proxied, early) == 401,
                    REFUSAL_DEADLINE,
                    "the early revocation at /rest",
                )
                await held.execute("SELECT pg_sleep(12)")
                assert status_at_rest(proxied, late) == 200  # not committed yet
        finally:
            await held.close()
            await other.close()

    asyncio.run(revoke_late())

    waited = wait_for(
        lambda: status_at_rest(proxied, late) == 401, REFUSAL_DEADLINE, "a 401 at /rest"
    )
    assert waited < REFUSAL_DEADLINE


def test_a_freshly_started_gateway_refuses_tokens_of_sessions_revoked_before_it_started(
    proxied: str, served: Served, gateway_env: dict[str, str], tmp_path: Path
) -> None:
    logged_out, slow_clock, alive = sign_in(proxied), sign_in(proxied), sign_in(proxied)
    httpx.post(f"{proxied}/auth/logout", headers=bearer(logged_out))
    sql(
        served.url,
        "UPDATE gateway.sessions SET revoked_at = now() - interval '10 minutes', "
        "revoke_reason = 'logout' WHERE id = $1",
        sid_of(slow_clock),
    )

    with run_gateway(gateway_env, cwd=tmp_path) as fresh:
        # The very first request: no time for any notification or poll to arrive.
        statuses = [status_at_rest(fresh, answer) for answer in (logged_out, slow_clock, alive)]

    assert statuses == [401, 401, 200]


# --- the feed itself, on both stores ------------------------------------------------------


@pytest.fixture
async def store(auth_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The app's store, through an engine of the test's own event loop."""
    engine = make_engine(auth_settings)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_revoked_sessions_leave_the_set_once_every_token_of_theirs_has_expired(
    client: Client, store: async_sessionmaker[AsyncSession], auth_settings: Settings
) -> None:
    settings = auth_settings
    ended = await login(client)
    await client.post("/auth/logout", headers=bearer(ended))
    clock = Clock()
    feed = Revocations(settings, store, clock=clock)
    await feed.resync()
    assert sid_of(ended) in feed.revoked_sessions

    async with store() as db:
        session = await db.scalar(select(Session).where(Session.id == sid_of(ended)))
    assert session is not None
    assert session.revoked_at is not None
    until = alive_until(
        revoked_at=session.revoked_at, expires_at=session.expires_at, settings=settings
    )
    # Every token of the session expires an access token lifetime after its revocation at the
    # latest; the feed keeps it a clock margin longer, then lets it go.
    assert until >= session.revoked_at + timedelta(seconds=settings.access_token_ttl)

    clock.now = until - timedelta(seconds=1)
    await feed.resync()
    assert sid_of(ended) in feed.revoked_sessions

    clock.now = until + timedelta(seconds=1)
    feed.prune()  # the decision alone, without a read
    assert sid_of(ended) not in feed.revoked_sessions
    await feed.resync()
    assert len(feed.revoked_sessions) == 0


async def test_a_session_that_expires_before_its_tokens_would_leaves_the_set_at_its_expiry(
    client: Client, store: async_sessionmaker[AsyncSession], auth_settings: Settings
) -> None:
    ended = await login(client)
    await client.post("/auth/logout", headers=bearer(ended))
    soon = datetime.now(UTC) + timedelta(seconds=90)
    async with store.begin() as db:
        await db.execute(update(Session).where(Session.id == sid_of(ended)).values(expires_at=soon))
    clock = Clock()
    feed = Revocations(auth_settings, store, clock=clock)
    await feed.resync()
    assert sid_of(ended) in feed.revoked_sessions

    clock.now = soon + timedelta(hours=1)  # long before revoked_at + the access token TTL
    await feed.resync()
    assert sid_of(ended) not in feed.revoked_sessions


async def test_an_incremental_read_sees_a_revocation_whatever_its_revoked_at(
    client: Client, store: async_sessionmaker[AsyncSession], auth_settings: Settings
) -> None:
    answer = await login(client)
    feed = Revocations(auth_settings, store)
    await feed.resync()
    assert sid_of(answer) not in feed.revoked_sessions

    async with store.begin() as db:
        await db.execute(
            update(Session)
            .where(Session.id == sid_of(answer))
            .values(revoked_at=datetime.now(UTC) - timedelta(minutes=10), revoke_reason="logout")
        )
    await feed.sync()

    assert sid_of(answer) in feed.revoked_sessions


# --- the process's own writes, learned at commit --------------------------------------------


async def test_a_revocation_learned_while_a_read_runs_outlives_that_read_not_the_next(
    client: Client, store: async_sessionmaker[AsyncSession], auth_settings: Settings
) -> None:
    """The read's snapshot may predate the commit of what the process learned meanwhile."""
    answer = await login(client)
    sid = sid_of(answer)
    learned_during_the_read = False

    def clock() -> datetime:
        nonlocal learned_during_the_read
        if not learned_during_the_read:  # the read has begun: its snapshot lacks the revocation
            learned_during_the_read = True
            now = datetime.now(UTC)
            feed.learn([EndedSession(sid, revoked_at=now, expires_at=now + timedelta(hours=1))])
        return datetime.now(UTC)

    feed = Revocations(auth_settings, store, clock=clock)
    await feed.resync()

    assert learned_during_the_read
    assert sid in feed.revoked_sessions
    await feed.resync()  # began after the learning: the store answers (it holds no revocation)
    assert sid not in feed.revoked_sessions


async def revoke_then_fail(db: AsyncSession, sid: str) -> None:
    async with db.begin():
        doomed = await db.get(Session, sid)
        assert doomed is not None
        await revoke_session(db, doomed, reason="logout", now=utcnow())
        raise RuntimeError("the transaction fails after the revocation")


async def test_a_started_feed_learns_its_own_commit_and_not_a_rolled_back_revocation(
    client: Client, store: async_sessionmaker[AsyncSession], auth_settings: Settings
) -> None:
    rolled_back, committed = await login(client), await login(client)
    feed = Revocations(auth_settings, store)
    await feed.start()
    try:
        async with store() as db:
            with pytest.raises(RuntimeError):
                await revoke_then_fail(db, sid_of(rolled_back))
            # The same store session commits something else: the rolled-back note stays dropped.
            async with db.begin():
                ended = await db.get(Session, sid_of(committed))
                assert ended is not None
                await revoke_session(db, ended, reason="logout", now=utcnow())
                assert sid_of(committed) not in feed.revoked_sessions  # not before the commit
            assert sid_of(committed) in feed.revoked_sessions
            assert sid_of(rolled_back) not in feed.revoked_sessions
    finally:
        await feed.stop()


# --- an access token never outlives its session ------------------------------------------


async def test_an_access_token_never_outlives_its_session(
    client: Client, store: async_sessionmaker[AsyncSession], auth_settings: Settings
) -> None:
    first = await login(client)
    ends = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=120)
    async with store.begin() as db:
        await db.execute(update(Session).where(Session.id == sid_of(first)).values(expires_at=ends))

    refreshed = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})

    assert refreshed.status_code == 200, refreshed.text
    claims = jwt.decode(refreshed.json()["access_token"], options={"verify_signature": False})
    assert auth_settings.access_token_ttl > 120  # so the cap is what made the difference
    assert claims["exp"] <= ends.timestamp()
    assert refreshed.json()["expires_at"] == claims["exp"]
    assert 0 < refreshed.json()["expires_in"] <= 120


def test_the_token_lifetime_cap_is_exact(tmp_path: Path) -> None:
    settings = Settings(keys_dir=str(tmp_path))
    revoked = datetime(2030, 1, 1, tzinfo=UTC)
    far = revoked + timedelta(days=30)
    near = revoked + timedelta(seconds=10)

    by_ttl = alive_until(revoked_at=revoked, expires_at=far, settings=settings)
    by_expiry = alive_until(revoked_at=revoked, expires_at=near, settings=settings)

    assert by_ttl - by_expiry == timedelta(seconds=settings.access_token_ttl - 10)
    assert by_expiry > near


async def test_a_feed_stops_when_a_notification_arrives_with_the_stop(
    client: Client, store: async_sessionmaker[AsyncSession], auth_settings: Settings
) -> None:
    # A notification woke the feed in the same loop turn as stop() cancelled it: on Python
    # 3.11, asyncio.wait_for returned the wake-up and swallowed the cancel, so the feed ran on
    # and stop() waited for it forever (a whole CI run hung here).
    for _ in range(20):
        feed = Revocations(auth_settings, store)
        await feed.start()
        await asyncio.sleep(0.05)  # the feed is waiting for a notification or its poll
        feed._changed.set()
        async with asyncio.timeout(10):
            await feed.stop()
