"""The platform admin API: admin keys, user and organization search, suspension, deletion."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts import create_admin_key, revoke_admin_key
from gateway.settings import Settings
from gateway.store import AdminKey, AuthEvent, Membership, Session, User, utcnow
from gateway.store.engine import make_engine, make_sessionmaker
from tests.integration.conftest import PASSWORD, Accounts, Client, bearer, login
from tests.support.cli import cli_stdout


@asynccontextmanager
async def store_of(settings: Settings) -> AsyncIterator[AsyncSession]:
    """A transaction on the test's own engine (the app's engine lives on the app's loop)."""
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine).begin() as db:
            yield db
    finally:
        await engine.dispose()


async def new_key(settings: Settings, *scopes: str) -> str:
    async with store_of(settings) as db:
        _, key = await create_admin_key(db, name="ops", scopes=list(scopes), now=utcnow())
    return key


async def test_users_are_listed_and_searched_with_a_read_key(
    client: Client, accounts: Accounts, auth_settings: Settings
) -> None:
    key = await new_key(auth_settings, "users:read")
    everyone = await client.get("/admin/users", headers=bearer(key))
    assert everyone.status_code == 200, everyone.text
    emails = [user["email"] for user in everyone.json()["users"]]
    assert sorted(emails) == ["ada@example.com", "bob@example.com"]
    found = await client.get("/admin/users", params={"q": "ADA"}, headers=bearer(key))
    assert [user["user_id"] for user in found.json()["users"]] == [accounts.ada]
    # LIKE metacharacters are searched for as themselves.
    none = await client.get("/admin/users", params={"q": "_da%"}, headers=bearer(key))
    assert none.json()["users"] == []


async def test_user_pages_follow_the_next_cursor(
    client: Client, accounts: Accounts, auth_settings: Settings
) -> None:
    key = await new_key(auth_settings, "users:read")
    first = (await client.get("/admin/users", params={"limit": 1}, headers=bearer(key))).json()
    assert len(first["users"]) == 1
    assert first["next"] == first["users"][0]["user_id"]
    second = (
        await client.get(
            "/admin/users", params={"limit": 1, "after": first["next"]}, headers=bearer(key)
        )
    ).json()
    assert len(second["users"]) == 1
    assert second["users"][0]["user_id"] > first["users"][0]["user_id"]
    assert {first["users"][0]["user_id"], second["users"][0]["user_id"]} == {
        accounts.ada,
        accounts.bob,
    }


async def test_organizations_are_listed_with_member_counts(
    client: Client, accounts: Accounts, auth_settings: Settings
) -> None:
    key = await new_key(auth_settings, "organizations:read")
    answer = await client.get("/admin/organizations", headers=bearer(key))
    assert answer.status_code == 200, answer.text
    counts = {org["org_name"]: org["members"] for org in answer.json()["organizations"]}
    assert counts == {"Acme": 1, "Globex": 1}


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer pgw_ak_" + "A" * 43,  # the right shape, but no such key
        "Bearer not-a-key",
        "Basic cGd3X2FrXzo=",
    ],
)
async def test_a_request_without_a_live_key_is_refused_alike(
    client: Client, accounts: Accounts, auth_settings: Settings, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    answer = await client.get("/admin/users", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["code"] in {"invalid_admin_key", "invalid_token"}
    assert answer.headers["www-authenticate"] == "Bearer"


async def test_a_revoked_key_is_refused_at_its_next_request(
    client: Client, accounts: Accounts, auth_settings: Settings
) -> None:
    key = await new_key(auth_settings, "users:read")
    assert (await client.get("/admin/users", headers=bearer(key))).status_code == 200
    async with store_of(auth_settings) as db:
        record = await db.scalar(select(AdminKey))
        assert record is not None
        assert record.last_used_at is not None
        await revoke_admin_key(db, key_id=record.id, now=utcnow())
    answer = await client.get("/admin/users", headers=bearer(key))
    assert answer.status_code == 401
    assert answer.json()["code"] == "invalid_admin_key"


async def test_a_key_is_kept_only_as_a_hash(
    client: Client, accounts: Accounts, auth_settings: Settings
) -> None:
    key = await new_key(auth_settings, "users:read")
    async with store_of(auth_settings) as db:
        record = await db.scalar(select(AdminKey))
    assert record is not None
    assert key not in repr(record.__dict__)
    assert record.key_hash != key


async def test_a_key_without_the_scope_is_refused(
    client: Client, accounts: Accounts, auth_settings: Settings
) -> None:
    key = await new_key(auth_settings, "users:read")
    answer = await client.post(f"/admin/users/{accounts.bob}/suspend", headers=bearer(key))
    assert answer.status_code == 403
    assert answer.json()["code"] == "admin_scope_missing"
    async with store_of(auth_settings) as db:
        bob = await db.get(User, accounts.bob)
    assert bob is not None
    assert bob.status == "active"


async def test_suspension_ends_the_sessions_and_activation_lets_the_user_back(
    client: Client, accounts: Accounts, auth_settings: Settings
) -> None:
    key = await new_key(auth_settings, "users:write")
    tokens = await login(client, "bob@example.com")
    suspended = await client.post(f"/admin/users/{accounts.bob}/suspend", headers=bearer(key))
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended"
    me = await client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code in {401, 403}
    activated = await client.post(f"/admin/users/{accounts.bob}/activate", headers=bearer(key))
    assert activated.json()["status"] == "active"
    assert (await client.get("/auth/me", headers=bearer(tokens["access_token"]))).status_code in {
        401,
        403,
    }, "suspension ended the session for good"
    await login(client, "bob@example.com")


async def test_a_deleted_user_keeps_no_personal_data_and_cannot_come_back(
    client: Client, accounts: Accounts, auth_settings: Settings
) -> None:
    key = await new_key(auth_settings, "users:write", "users:read")
    tokens = await login(client, "bob@example.com")
    answer = await client.delete(f"/admin/users/{accounts.bob}", headers=bearer(key))
    assert answer.status_code == 204, answer.text

    me = await client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code in {401, 403}
    relogin = await client.post(
        "/auth/login", json={"email": "bob@example.com", "password": PASSWORD}
    )
    assert relogin.status_code == 401
    listed = (await client.get("/admin/users", headers=bearer(key))).json()["users"]
    assert accounts.bob not in [user["user_id"] for user in listed]
    assert (
        await client.delete(f"/admin/users/{accounts.bob}", headers=bearer(key))
    ).status_code == 404
    assert (
        await client.post(f"/admin/users/{accounts.bob}/activate", headers=bearer(key))
    ).status_code == 404

    async with store_of(auth_settings) as db:
        bob = await db.get(User, accounts.bob)
        sessions = (await db.scalars(select(Session).where(Session.user_id == accounts.bob))).all()
        events = (
            await db.scalars(select(AuthEvent).where(AuthEvent.user_id == accounts.bob))
        ).all()
    assert bob is not None
    assert bob.deleted_at is not None
    assert "bob" not in bob.email
    assert bob.status == "suspended"
    # The sessions stay, revoked, so the proxy's revocation feed keeps refusing their tokens.
    assert sessions
    assert all(session.revoked_at is not None for session in sessions)
    assert all(session.ip is None and session.user_agent is None for session in sessions)
    assert {event.type for event in events} >= {"user_created", "login_succeeded", "user_deleted"}
    assert all(event.ip is None for event in events)
    assert "bob@example.com" not in repr([event.details for event in events])


async def test_the_last_admin_of_an_organization_cannot_be_deleted(
    client: Client, accounts: Accounts, auth_settings: Settings
) -> None:
    key = await new_key(auth_settings, "users:write")
    answer = await client.delete(f"/admin/users/{accounts.ada}", headers=bearer(key))
    assert answer.status_code == 409
    assert answer.json()["code"] == "last_org_admin"
    async with store_of(auth_settings) as db:
        ada = await db.get(User, accounts.ada)
        memberships = (
            await db.scalars(select(Membership).where(Membership.user_id == accounts.ada))
        ).all()
    assert ada is not None
    assert ada.deleted_at is None
    assert len(memberships) == 2


def test_admin_keys_from_the_cli_work_once_and_stop_when_revoked(auth_settings: Settings) -> None:
    env = settings_env(auth_settings)
    created: dict[str, Any] = json.loads(
        cli_stdout(env, None, "admin-keys", "create", "ops", "--scope", "users:read", "--json")
    )
    assert created["key"].startswith("pgw_ak_")
    assert created["scopes"] == ["users:read"]
    listed = json.loads(cli_stdout(env, None, "admin-keys", "list", "--json"))
    assert created["key"] not in repr(listed)
    assert [key["admin_key_id"] for key in listed["admin_keys"]] == [created["admin_key_id"]]
    cli_stdout(env, None, "admin-keys", "revoke", str(created["admin_key_id"]), "--json")

    async def revoked() -> bool:
        engine = make_engine(auth_settings)
        try:
            async with make_sessionmaker(engine)() as db:
                record = await db.get(AdminKey, created["admin_key_id"])
                return record is not None and record.revoked_at is not None
        finally:
            await engine.dispose()

    assert asyncio.run(revoked())


def settings_env(settings: Settings) -> dict[str, str]:
    return {
        "GATEWAY_DATABASE_URL": settings.database_url,
        "GATEWAY_DATABASE_SCHEMA": settings.database_schema,
        "GATEWAY_KEYS_DIR": settings.keys_dir,
    }


async def test_admin_calls_do_not_use_up_the_sign_in_budget_of_their_address(
    auth_settings: Settings, accounts: Accounts
) -> None:
    settings = auth_settings.model_copy(update={"auth_rate_limit": 3})
    key = await new_key(settings, "users:read")
    async with Client(settings) as client:
        for _ in range(3):
            assert (await client.get("/admin/users", headers=bearer(key))).status_code == 200
        assert (await client.get("/admin/users", headers=bearer(key))).status_code == 429
        signed_in = await client.post(
            "/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
        )
        assert signed_in.status_code == 200, signed_in.text


async def test_another_scheme_gets_the_admin_key_refusal(
    client: Client, accounts: Accounts, auth_settings: Settings
) -> None:
    answer = await client.get("/admin/users", headers={"Authorization": "Basic cGd3X2FrXzo="})
    assert answer.status_code == 401
    assert answer.json()["code"] == "invalid_admin_key"
