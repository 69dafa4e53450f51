"""Fixtures for the /auth tests: the real application on a real store, with accounts in it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gateway.accounts.memberships import add_membership
from gateway.accounts.organizations import create_organization
from gateway.accounts.passwords import PasswordHashing
from gateway.accounts.users import create_user
from gateway.settings import Settings
from gateway.store.engine import make_engine, make_sessionmaker
from gateway.web.runtime import Runtime
from tests.support.in_process import GatewayClient, runtime_behind

Client = GatewayClient
PASSWORD = "correct horse battery"


@dataclass
class Accounts:
    """Two organizations; ada is admin of acme and client of globex; bob belongs nowhere."""

    acme: int = 0
    globex: int = 0
    ada: int = 0
    bob: int = 0
    extra: dict[str, int] = field(default_factory=dict)


async def seed_accounts(settings: Settings) -> Accounts:
    engine = make_engine(settings)
    passwords = PasswordHashing(workers=1)
    accounts = Accounts()
    try:
        async with make_sessionmaker(engine).begin() as db:
            accounts.acme = (await create_organization(db=db, name="Acme")).id
            accounts.globex = (await create_organization(db=db, name="Globex")).id
            ada = await create_user(
                db=db,
                passwords=passwords,
                settings=settings,
                email="ada@example.com",
                password=PASSWORD,
                organization_id=accounts.acme,
                org_role="org_admin",
            )
            await add_membership(
                db=db, user=ada, organization_id=accounts.globex, role="org_client"
            )
            accounts.ada = ada.id
            accounts.bob = (
                await create_user(
                    db=db,
                    passwords=passwords,
                    settings=settings,
                    email="bob@example.com",
                    password=PASSWORD,
                )
            ).id
    finally:
        passwords.close()
        await engine.dispose()
    return accounts


@pytest.fixture
def auth_settings(migrated_store: Settings, tmp_path: Path) -> Settings:
    """The store, a keystore in tmp_path, plain-HTTP cookies and a generous per-IP limit."""
    return migrated_store.model_copy(
        update={
            "keys_dir": str(tmp_path / "keys"),
            "cookie_secure": False,
            "auth_rate_limit": 100_000,
        }
    )


@pytest.fixture
def accounts(auth_settings: Settings) -> Accounts:
    return asyncio.run(seed_accounts(auth_settings))


@pytest.fixture
async def client(auth_settings: Settings, accounts: Accounts) -> AsyncIterator[Client]:
    """What `gateway serve` runs, in process: the front door with Litestar behind it."""
    async with GatewayClient(auth_settings) as test_client:
        yield test_client


def runtime_of(client: Client) -> Runtime:
    return runtime_behind(client.front_door)


async def login(client: Client, email: str = "ada@example.com", **body: Any) -> dict[str, Any]:
    response = await client.post("/auth/login", json={"email": email, "password": PASSWORD, **body})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
