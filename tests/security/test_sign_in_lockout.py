"""A stranger cannot lock the owner out: the hard lock is per (email, address), a spray is slowed.

The first test runs a real ``gateway serve`` behind a (pretend) trusted proxy, so the client
address comes from ``X-Forwarded-For`` exactly as in production. The others call the sign-in
function of a real application over a real store with chosen client addresses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import anyio.to_thread
import httpx
import pytest
from sqlalchemy import update

from gateway.accounts.passwords import PasswordHashing
from gateway.errors import GatewayError
from gateway.sessions._throttle import client_key
from gateway.sessions.issuing import ClientInfo
from gateway.sessions.login import login
from gateway.settings import Settings
from gateway.store.engine import make_engine, make_sessionmaker
from gateway.store.models import LoginKnownAddress, utcnow
from tests.e2e.conftest import gateway, ok
from tests.integration.conftest import PASSWORD, Accounts, Client, runtime_of
from tests.support.in_process import GatewayClient
from tests.support.server import run_gateway

ATTACKER = "203.0.113.7"
OWNER = "198.51.100.20"
WRONG = "not the password"


@pytest.fixture
def behind_a_proxy(tmp_path: Path) -> Iterator[str]:
    """A gateway process that believes X-Forwarded-For from 127.0.0.1, with one account."""
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
        "GATEWAY_KEYS_DIR": str(tmp_path / "keys"),
        "GATEWAY_COOKIE_SECURE": "false",
        "GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32",
        "GATEWAY_AUTH_RATE_LIMIT": "100000",
    }
    ok(gateway(env, "db", "upgrade"))
    ok(gateway(env, "users", "create", "ada@example.com", "--password-stdin", stdin=PASSWORD))
    with run_gateway(env, cwd=tmp_path) as base_url:
        yield base_url


def sign_in(base: str, client: str, password: str, email: str = "ada@example.com") -> int:
    response = httpx.post(
        f"{base}/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": client},
        timeout=30,
    )
    return response.status_code


def test_eight_failures_from_one_address_leave_the_owner_signing_in_from_another(
    behind_a_proxy: str,
) -> None:
    attack = [sign_in(behind_a_proxy, ATTACKER, WRONG) for _ in range(8)]

    owner = sign_in(behind_a_proxy, OWNER, PASSWORD)
    attacker_with_the_right_password = sign_in(behind_a_proxy, ATTACKER, PASSWORD)

    assert attack == [401] * 5 + [429] * 3
    assert owner == 200
    assert attacker_with_the_right_password == 429


def test_ipv6_clients_are_counted_by_their_slash_64(behind_a_proxy: str) -> None:
    attack = [sign_in(behind_a_proxy, f"2001:db8:1:2::{n}", WRONG) for n in range(1, 6)]

    same_network = sign_in(behind_a_proxy, "2001:db8:1:2:ffff::99", PASSWORD)
    next_network = sign_in(behind_a_proxy, "2001:db8:1:3::1", PASSWORD)

    assert attack == [401] * 5
    assert same_network == 429
    assert next_network == 200


def test_client_keys_group_ipv6_by_slash_64_and_keep_ipv4_as_it_is() -> None:
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert client_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_key(None) == "unknown"
    assert client_key("x" * 500).startswith("peer:")
    assert len(client_key("x" * 500)) <= 64


# The per-email ceiling, with a small one so the test stays short.

CEILING = 6


@pytest.fixture
def spray_settings(auth_settings: Settings) -> Settings:
    return auth_settings.model_copy(update={"login_email_max_failures": CEILING})


@pytest.fixture
async def spray_client(spray_settings: Settings, accounts: Accounts) -> AsyncIterator[Client]:
    async with GatewayClient(spray_settings) as test_client:
        yield test_client


async def attempt(client: Client, address: str, password: str, email: str) -> str:
    """The outcome of one sign-in from ``address``: "ok" or the refusal's code.

    It runs on the application's own event loop (the store's connections belong to it).
    """

    async def sign_in() -> str:
        runtime = runtime_of(client)
        try:
            await login(
                store=runtime.store,
                settings=runtime.settings,
                passwords=runtime.password_check,
                issuer=runtime.issuer,
                email=email,
                password=password,
                organization_id=None,
                client=ClientInfo(ip=address, user_agent=None),
            )
        except GatewayError as exc:
            return exc.code
        return "ok"

    portal = client.blocking_portal
    return await anyio.to_thread.run_sync(lambda: portal.call(sign_in))


async def backdate_known_address(settings: Settings, address: str, days: int) -> None:
    engine = make_engine(settings)
    async with make_sessionmaker(engine).begin() as db:
        await db.execute(
            update(LoginKnownAddress)
            .where(LoginKnownAddress.client_key == client_key(address))
            .values(last_success_at=utcnow() - timedelta(days=days))
        )
    await engine.dispose()


async def test_a_spray_from_many_addresses_is_held_back_at_the_ceiling_except_known_addresses(
    spray_client: Client, spray_settings: Settings
) -> None:
    email = "ada@example.com"
    known, stale = "198.51.100.20", "198.51.100.21"
    assert await attempt(spray_client, known, PASSWORD, email) == "ok"
    assert await attempt(spray_client, stale, PASSWORD, email) == "ok"
    await backdate_known_address(spray_settings, stale, days=31)

    spray = [
        await attempt(spray_client, f"203.0.113.{n}", WRONG, email) for n in range(1, CEILING + 2)
    ]
    stranger = await attempt(spray_client, "192.0.2.50", PASSWORD, email)
    from_a_known_address = await attempt(spray_client, known, PASSWORD, email)
    from_an_address_known_too_long_ago = await attempt(spray_client, stale, PASSWORD, email)

    assert spray == ["invalid_credentials"] * CEILING + ["too_many_attempts"]
    assert stranger == "too_many_attempts"
    assert from_a_known_address == "ok"
    assert from_an_address_known_too_long_ago == "too_many_attempts"


async def test_an_email_without_an_account_meets_the_same_ceiling_with_the_same_answers(
    spray_client: Client,
) -> None:
    outcomes = {}
    for email in ("ada@example.com", "nobody@example.com"):
        outcomes[email] = [
            await attempt(spray_client, f"203.0.113.{n}", WRONG, email)
            for n in range(1, CEILING + 3)
        ]

    assert outcomes["ada@example.com"] == outcomes["nobody@example.com"]
    assert outcomes["nobody@example.com"][-1] == "too_many_attempts"


async def test_a_known_address_is_still_hard_locked_after_its_own_failures(
    spray_client: Client,
) -> None:
    email, address = "ada@example.com", "198.51.100.20"
    assert await attempt(spray_client, address, PASSWORD, email) == "ok"

    failures = [await attempt(spray_client, address, WRONG, email) for _ in range(5)]

    assert failures == ["invalid_credentials"] * 5
    assert await attempt(spray_client, address, PASSWORD, email) == "too_many_attempts"


@pytest.mark.parametrize("lockout", [3600, 7200], ids=["equal-to-the-max", "above-the-max"])
async def test_a_lockout_at_or_above_its_maximum_still_locks_with_401s_before(
    spray_settings: Settings, accounts: Accounts, lockout: int
) -> None:
    """A flat lockout (GATEWAY_LOGIN_LOCKOUT >= GATEWAY_LOGIN_LOCKOUT_MAX) has no back-off
    level below the maximum; every failure is still a 401 and the fifth one locks."""
    settings = spray_settings.model_copy(
        update={"login_lockout": lockout, "login_lockout_max": 3600}
    )
    email, address = "ada@example.com", "198.51.100.30"
    async with GatewayClient(settings) as client:
        failures = [await attempt(client, address, WRONG, email) for _ in range(5)]

        assert failures == ["invalid_credentials"] * 5
        assert await attempt(client, address, PASSWORD, email) == "too_many_attempts"


# Concurrent attempts: the budget is reserved before the password is verified.


class GatedCountingPasswords(PasswordHashing):
    """The real verifier, counting its calls; each call waits at a gate the test opens."""

    def __init__(self) -> None:
        super().__init__(workers=2)
        self.calls = 0
        self.gate: asyncio.Event | None = None

    async def verify(self, password_hash: str, password: str) -> bool:
        self.calls += 1
        assert self.gate is not None
        await self.gate.wait()
        return await super().verify(password_hash, password)


@dataclass(frozen=True)
class Burst:
    wrong: list[httpx.Response]
    right: httpx.Response
    verifications: int


async def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` on the application's loop with a deadline (no fixed sleep to tune)."""
    deadline = asyncio.get_running_loop().time() + 30
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within 30 s")
        await asyncio.sleep(0.01)


async def burst_then_the_right_password(
    client: Client, wrong_from: list[str], right_from: str
) -> Burst:
    """Wrong guesses all at once; while the admitted ones are held in their verification, the
    right password; then the verifications go on. Real HTTP requests through the real app.
    """
    passwords = GatedCountingPasswords()
    runtime_of(client).passwords = passwords

    async def on_the_app_loop() -> Burst:
        passwords.gate = asyncio.Event()
        transport = httpx.ASGITransport(app=client.app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:

            def post(address: str, password: str) -> asyncio.Task[httpx.Response]:
                return asyncio.create_task(
                    http.post(
                        "/auth/login",
                        json={"email": "ada@example.com", "password": password},
                        headers={"X-Forwarded-For": address},
                    )
                )

            wrong = [post(address, WRONG) for address in wrong_from]
            await until(
                lambda: passwords.calls + sum(task.done() for task in wrong) == len(wrong),
                "every wrong guess being verified or answered",
            )
            held = passwords.calls
            right = post(right_from, PASSWORD)
            await until(
                lambda: right.done() or passwords.calls > held, "the right guess being handled"
            )
            passwords.gate.set()
            return Burst(list(await asyncio.gather(*wrong)), await right, passwords.calls)

    portal = client.blocking_portal
    return await anyio.to_thread.run_sync(lambda: portal.call(on_the_app_loop))


def refusal(response: httpx.Response) -> tuple[int, str, str | None]:
    return response.status_code, response.text, response.headers.get("retry-after")


@pytest.fixture
async def proxied_client(auth_settings: Settings, accounts: Accounts) -> AsyncIterator[Client]:
    """The real application, believing X-Forwarded-For from 127.0.0.1 (the burst's peer)."""
    settings = auth_settings.model_copy(update={"trusted_proxies": ["127.0.0.1/32"]})
    async with GatewayClient(settings) as test_client:
        yield test_client


async def test_a_burst_from_one_address_gets_no_more_verifications_than_the_budget(
    proxied_client: Client, auth_settings: Settings
) -> None:
    budget = auth_settings.login_max_failures

    burst = await burst_then_the_right_password(proxied_client, [ATTACKER] * 20, ATTACKER)

    refused = [refusal(r) for r in burst.wrong if r.status_code == 429]
    assert burst.verifications <= budget
    assert sorted(r.status_code for r in burst.wrong) == [401] * budget + [429] * (20 - budget)
    # Over the budget, the right password gets the very answer a wrong one gets.
    assert {refusal(burst.right)} == set(refused)
    assert burst.right.json() == {
        "code": "too_many_attempts",
        "message": "Too many failed sign-ins for this account; try again later.",
    }


async def test_a_burst_from_many_addresses_gets_no_more_verifications_than_the_ceiling(
    proxied_client: Client, auth_settings: Settings
) -> None:
    ceiling = auth_settings.login_email_max_failures
    addresses = [f"203.0.113.{n}" for n in range(1, 61)]

    burst = await burst_then_the_right_password(proxied_client, addresses, "192.0.2.99")

    refused = [refusal(r) for r in burst.wrong if r.status_code == 429]
    assert burst.verifications <= ceiling
    assert sorted(r.status_code for r in burst.wrong) == [401] * ceiling + [429] * (60 - ceiling)
    assert {refusal(burst.right)} == set(refused)
