"""The process that ends a session refuses its tokens at the mount before it answers.

Other processes learn of a revocation through the feed (gateway/revocation/feed.py), which
polls the SQLite store twice a second. The process that wrote it must not wait for the feed:
before, an access token presented at ``/rest`` right after ``POST /auth/logout`` answered 204
still reached PostgREST for up to half a second. Each test here ends a session (or suspends a
user) through the real application in-process, in every way the gateway does it, and sends
the old token to the mount in the very next request, with no wait: it is refused, and nothing
reaches the upstream (a recording stand-in for PostgREST).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from gateway.accounts import create_admin_key
from gateway.settings import Settings
from gateway.store import utcnow
from gateway.store.engine import make_engine, make_sessionmaker
from tests.integration.conftest import PASSWORD, Accounts, Client, bearer, login
from tests.support.in_process import GatewayClient
from tests.support.upstream import RecordingUpstream

# SQLite is where the feed polls; PostgreSQL's NOTIFY arrives soon, but not before the answer.
pytestmark = pytest.mark.parametrize("store_env", ["sqlite", "postgres"], indirect=True)

REST = "/rest/projects"


@pytest.fixture(scope="module")
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream().start()
    yield server
    server.close()


@pytest.fixture
def mounted(auth_settings: Settings, accounts: Accounts, upstream: RecordingUpstream) -> Settings:
    """The seeded store's settings, with the PostgREST mount in front of the recording upstream.

    The refresh reuse grace is 0, so that a refresh token used twice is reuse at once.
    """
    return auth_settings.model_copy(update={"upstream_url": upstream.url, "refresh_reuse_grace": 0})


@pytest.fixture
async def gateway(mounted: Settings) -> AsyncIterator[Client]:
    async with GatewayClient(mounted) as client:
        yield client


@asynccontextmanager
async def admin_key(settings: Settings, *scopes: str) -> AsyncIterator[dict[str, str]]:
    """An admin key's Authorization header, made on the test's own engine."""
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine).begin() as db:
            _, key = await create_admin_key(db, name="ops", scopes=list(scopes), now=utcnow())
        yield bearer(key)
    finally:
        await engine.dispose()


async def at_rest(
    client: Client, upstream: RecordingUpstream, answer: dict[str, Any]
) -> tuple[int, str | None, bool]:
    """The mount's status and error code for the answer's access token, and whether the
    request reached the upstream."""
    before = len(upstream.heads)
    response = await client.get(REST, headers=bearer(answer["access_token"]))
    code = response.json().get("code") if response.status_code >= 400 else None
    return response.status_code, code, len(upstream.heads) > before


def accepted(status: tuple[int, str | None, bool]) -> bool:
    return status == (200, None, True)


async def test_a_logged_out_token_is_refused_at_the_mount_by_the_very_next_request(
    gateway: Client, upstream: RecordingUpstream
) -> None:
    ended = await login(gateway)
    assert accepted(await at_rest(gateway, upstream, ended))

    logout = await gateway.post("/auth/logout", headers=bearer(ended["access_token"]))

    assert logout.status_code == 204
    assert await at_rest(gateway, upstream, ended) == (401, "session_revoked", False)


async def test_logout_everywhere_refuses_every_other_sessions_token_at_once(
    gateway: Client, upstream: RecordingUpstream
) -> None:
    caller, other = await login(gateway), await login(gateway)
    assert accepted(await at_rest(gateway, upstream, other))

    logout = await gateway.post(
        "/auth/logout", headers=bearer(caller["access_token"]), json={"scope": "global"}
    )

    assert logout.status_code == 204
    assert await at_rest(gateway, upstream, other) == (401, "session_revoked", False)
    assert await at_rest(gateway, upstream, caller) == (401, "session_revoked", False)


async def test_a_password_change_refuses_the_other_sessions_tokens_at_once(
    gateway: Client, upstream: RecordingUpstream
) -> None:
    caller, other = await login(gateway), await login(gateway)
    assert accepted(await at_rest(gateway, upstream, other))

    changed = await gateway.post(
        "/auth/password/change",
        headers=bearer(caller["access_token"]),
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
    )

    assert changed.status_code == 204, changed.text
    assert await at_rest(gateway, upstream, other) == (401, "session_revoked", False)
    assert accepted(await at_rest(gateway, upstream, caller))


async def test_a_reused_refresh_token_refuses_the_sessions_access_tokens_at_once(
    gateway: Client, upstream: RecordingUpstream
) -> None:
    stolen = await login(gateway)
    renewed = await gateway.post("/auth/refresh", json={"refresh_token": stolen["refresh_token"]})
    assert renewed.status_code == 200, renewed.text
    assert accepted(await at_rest(gateway, upstream, renewed.json()))

    replayed = await gateway.post("/auth/refresh", json={"refresh_token": stolen["refresh_token"]})

    assert replayed.status_code == 401
    assert replayed.json()["code"] == "refresh_token_reused"
    assert await at_rest(gateway, upstream, renewed.json()) == (401, "session_revoked", False)


async def test_leaving_an_organization_refuses_the_tokens_acting_for_it_at_once(
    gateway: Client, upstream: RecordingUpstream, accounts: Accounts
) -> None:
    there = await login(gateway, organization_id=accounts.globex)
    assert accepted(await at_rest(gateway, upstream, there))

    left = await gateway.post(
        f"/auth/organizations/{accounts.globex}/leave", headers=bearer(there["access_token"])
    )

    assert left.status_code == 204, left.text
    assert await at_rest(gateway, upstream, there) == (401, "session_revoked", False)


async def test_a_suspended_users_token_is_refused_at_the_mount_by_the_very_next_request(
    gateway: Client, upstream: RecordingUpstream, accounts: Accounts, mounted: Settings
) -> None:
    victim = await login(gateway)
    assert accepted(await at_rest(gateway, upstream, victim))

    async with admin_key(mounted, "users:write") as key:
        suspended = await gateway.post(f"/admin/users/{accounts.ada}/suspend", headers=key)

    assert suspended.status_code == 200, suspended.text
    assert await at_rest(gateway, upstream, victim) == (403, "user_suspended", False)


async def test_a_user_activated_again_is_served_at_the_mount_by_the_very_next_request(
    gateway: Client, upstream: RecordingUpstream, accounts: Accounts, mounted: Settings
) -> None:
    async with admin_key(mounted, "users:write") as key:
        assert (await gateway.post(f"/admin/users/{accounts.ada}/suspend", headers=key)).is_success
        activated = await gateway.post(f"/admin/users/{accounts.ada}/activate", headers=key)
    assert activated.status_code == 200, activated.text

    back = await login(gateway)

    assert accepted(await at_rest(gateway, upstream, back))


async def test_a_deleted_users_token_is_refused_at_the_mount_by_the_very_next_request(
    gateway: Client, upstream: RecordingUpstream, accounts: Accounts, mounted: Settings
) -> None:
    victim = await login(gateway, "bob@example.com")
    assert accepted(await at_rest(gateway, upstream, victim))

    async with admin_key(mounted, "users:write") as key:
        deleted = await gateway.delete(f"/admin/users/{accounts.bob}", headers=key)

    assert deleted.is_success, deleted.text
    assert await at_rest(gateway, upstream, victim) == (403, "user_suspended", False)
