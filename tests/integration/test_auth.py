"""/auth: login, refresh rotation and reuse detection, logout, organizations, throttling."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.accounts.passwords import PasswordHashing
from gateway.settings import Settings
from gateway.store.engine import make_engine, make_sessionmaker
from gateway.store.models import AuthEvent, Membership, RefreshToken, User
from tests.integration.conftest import (
    PASSWORD,
    Accounts,
    Client,
    bearer,
    login,
    runtime_of,
)
from tests.support.in_process import GatewayClient

# The peer address Litestar's test client reports for every request.
TEST_CLIENT = "testclient"


def decode_segment(segment: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


def claims_of(token: str) -> dict[str, Any]:
    return decode_segment(token.split(".")[1])


async def rows(settings: Settings, statement: Any) -> list[Any]:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as db:
            return list((await db.execute(statement)).all())
    finally:
        await engine.dispose()


async def execute(settings: Settings, statement: Any) -> None:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine).begin() as db:
            await db.execute(statement)
    finally:
        await engine.dispose()


# --- login -------------------------------------------------------------------------------------


async def test_login_returns_a_token_with_exactly_the_documented_claims(
    client: Client, accounts: Accounts, auth_settings: Settings
) -> None:
    answer = await login(client, "ADA@Example.COM", organization_id=accounts.acme)

    assert answer["token_type"] == "bearer"
    assert answer["expires_in"] == auth_settings.access_token_ttl
    assert answer["refresh_token"].startswith("pgw_rt_")
    header = decode_segment(answer["access_token"].split(".")[0])
    assert header["alg"] == "ES256"
    assert header["typ"] == "JWT"
    assert isinstance(header["kid"], str)
    claims = claims_of(answer["access_token"])
    assert set(claims) == {
        "iss",
        "sub",
        "iat",
        "exp",
        "jti",
        "sid",
        "role",
        "token_type",
        "user",
        "organization",
    }
    assert claims["iss"] == auth_settings.issuer
    assert claims["sub"] == str(accounts.ada)
    assert claims["exp"] - claims["iat"] == auth_settings.access_token_ttl
    assert claims["exp"] == answer["expires_at"]
    assert claims["role"] == "authenticated"
    assert claims["token_type"] == "access_token"
    assert claims["user"] == {
        "role": "org_admin",
        "email": "ada@example.com",
        "status": "active",
        "user_id": accounts.ada,
        "organization_id": accounts.acme,
    }
    assert claims["organization"] == {"org_name": "Acme", "organization_id": accounts.acme}
    assert type(claims["user"]["user_id"]) is int
    assert type(claims["organization"]["organization_id"]) is int
    assert answer["user"] == claims["user"]
    assert answer["organization"] == claims["organization"]


async def test_a_token_carries_aud_only_when_an_audience_is_configured(
    auth_settings: Settings, accounts: Accounts
) -> None:
    settings = auth_settings.model_copy(update={"audience": "my-api"})
    async with GatewayClient(settings) as client:
        answer = await login(client)
        me = await client.get("/auth/me", headers=bearer(answer["access_token"]))

    assert claims_of(answer["access_token"])["aud"] == "my-api"
    assert me.status_code == 200


async def test_without_an_organization_id_the_last_used_organization_is_chosen(
    client: Client, accounts: Accounts
) -> None:
    first = await login(client)
    await login(client, organization_id=accounts.globex)
    again = await login(client)

    assert first["organization"]["organization_id"] == accounts.acme  # the oldest membership
    assert again["organization"]["organization_id"] == accounts.globex
    assert again["user"]["role"] == "org_client"


async def test_a_user_without_organization_gets_null_organization_claims(client: Client) -> None:
    claims = claims_of((await login(client, "bob@example.com"))["access_token"])

    assert claims["organization"] is None
    assert claims["user"]["role"] is None
    assert claims["user"]["organization_id"] is None
    assert claims["role"] == "authenticated"


async def test_login_into_an_organization_the_user_is_not_in_is_refused(
    client: Client, accounts: Accounts
) -> None:
    response = await client.post(
        "/auth/login",
        json={"email": "bob@example.com", "password": PASSWORD, "organization_id": accounts.acme},
    )

    assert response.status_code == 403
    assert response.json()["code"] == "not_a_member"


async def test_unknown_email_and_wrong_password_get_the_same_answer_after_one_verification(
    client: Client,
) -> None:
    runtime = runtime_of(client)
    verified: list[str] = []

    class CountingPasswords(PasswordHashing):
        """The real verifier, recording each hash it is asked to check."""

        async def verify(self, password_hash: str, password: str) -> bool:
            verified.append(password_hash)
            return await super().verify(password_hash, password)

    runtime.passwords = CountingPasswords(workers=1)
    wrong = await client.post(
        "/auth/login", json={"email": "ada@example.com", "password": "not the password"}
    )
    wrong_hashes, verified[:] = list(verified), []
    unknown = await client.post(
        "/auth/login", json={"email": "nobody@example.com", "password": "not the password"}
    )

    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {"code": "invalid_credentials", "message": "The email or password is incorrect."}
    )
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"] == "Bearer"
    assert len(wrong_hashes) == 1
    assert verified == [runtime.dummy_hash]
    # The dummy hash has today's parameters, so it costs what a real account's hash costs.
    assert runtime.dummy_hash.split("$")[:4] == wrong_hashes[0].split("$")[:4]


async def test_a_suspended_user_is_told_only_after_the_right_password(
    client: Client, auth_settings: Settings
) -> None:
    from sqlalchemy import update

    await execute(
        auth_settings,
        update(User).where(User.email == "ada@example.com").values(status="suspended"),
    )

    wrong = await client.post(
        "/auth/login", json={"email": "ada@example.com", "password": "nope nope"}
    )
    right = await client.post(
        "/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )

    assert wrong.status_code == 401
    assert right.status_code == 403
    assert right.json()["code"] == "user_suspended"


async def test_a_stale_password_hash_is_upgraded_on_the_next_login(
    client: Client, auth_settings: Settings
) -> None:
    from argon2 import PasswordHasher
    from sqlalchemy import update

    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    await execute(
        auth_settings,
        update(User).where(User.email == "ada@example.com").values(password_hash=weak),
    )

    await login(client)

    [(stored,)] = await rows(
        auth_settings, select(User.password_hash).where(User.email == "ada@example.com")
    )
    assert stored != weak
    assert not PasswordHashing(workers=1).needs_rehash(stored)
    await login(client)  # and the upgraded hash still verifies


# --- refresh ------------------------------------------------------------------------------------


async def test_refresh_rotates_the_refresh_token_and_stores_only_hashes(
    client: Client, auth_settings: Settings
) -> None:
    first = await login(client)

    response = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})

    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert claims_of(second["access_token"])["sid"] == claims_of(first["access_token"])["sid"]
    stored = {h for (h,) in await rows(auth_settings, select(RefreshToken.token_hash))}
    for token in (first["refresh_token"], second["refresh_token"]):
        assert hashlib.sha256(token.encode()).hexdigest() in stored
        assert token not in stored


async def test_a_replay_inside_the_grace_window_gets_the_same_successor(client: Client) -> None:
    first = await login(client)

    a = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    b = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})

    assert a.status_code == b.status_code == 200
    assert a.json()["refresh_token"] == b.json()["refresh_token"]
    again = await client.post("/auth/refresh", json={"refresh_token": b.json()["refresh_token"]})
    assert again.status_code == 200


async def test_refresh_token_used_twice_outside_the_grace_window_revokes_the_session(
    auth_settings: Settings, accounts: Accounts
) -> None:
    settings = auth_settings.model_copy(update={"refresh_reuse_grace": 0})
    async with GatewayClient(settings) as client:
        first = await login(client)
        newest = (
            await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
        ).json()

        replay = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
        newest_refresh = await client.post(
            "/auth/refresh", json={"refresh_token": newest["refresh_token"]}
        )
        me = await client.get("/auth/me", headers=bearer(newest["access_token"]))

    assert replay.status_code == 401
    assert replay.json()["code"] == "refresh_token_reused"
    assert newest_refresh.status_code == 401
    assert newest_refresh.json()["code"] == "session_revoked"
    assert me.status_code == 401
    events = [t for (t,) in await rows(settings, select(AuthEvent.type))]
    assert "refresh_token_reused" in events


async def test_twenty_concurrent_refreshes_of_one_token_yield_one_successor(
    client: Client, auth_settings: Settings
) -> None:
    first = await login(client)
    sid = claims_of(first["access_token"])["sid"]

    answers = await asyncio.gather(
        *(
            client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
            for _ in range(20)
        )
    )

    successes = [a.json()["refresh_token"] for a in answers if a.status_code == 200]
    assert successes
    assert len(set(successes)) == 1
    assert all(a.status_code in (200, 401) for a in answers)
    [(count,)] = await rows(
        auth_settings,
        select(func.count()).select_from(RefreshToken).where(RefreshToken.session_id == sid),
    )
    assert count == 2  # the first token and its one successor


async def test_an_unknown_or_malformed_refresh_token_is_refused(client: Client) -> None:
    unknown = await client.post("/auth/refresh", json={"refresh_token": "pgw_rt_" + "A" * 43})
    malformed = await client.post("/auth/refresh", json={"refresh_token": "not-a-token"})

    assert unknown.status_code == malformed.status_code == 401
    assert unknown.json()["code"] == malformed.json()["code"] == "invalid_refresh_token"


async def test_suspension_ends_the_session_at_the_next_refresh(
    client: Client, auth_settings: Settings
) -> None:
    from sqlalchemy import update

    first = await login(client)
    await execute(
        auth_settings,
        update(User).where(User.email == "ada@example.com").values(status="suspended"),
    )

    refused = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    await execute(
        auth_settings, update(User).where(User.email == "ada@example.com").values(status="active")
    )
    after_reactivation = await client.post(
        "/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )

    assert refused.status_code == 403
    assert refused.json()["code"] == "user_suspended"
    assert after_reactivation.status_code == 401  # the session stays ended


async def test_a_removed_membership_ends_the_session_at_the_next_refresh(
    client: Client, auth_settings: Settings, accounts: Accounts
) -> None:
    from sqlalchemy import delete

    first = await login(client, organization_id=accounts.globex)
    await execute(
        auth_settings,
        delete(Membership).where(
            Membership.user_id == accounts.ada, Membership.organization_id == accounts.globex
        ),
    )

    refused = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})

    assert refused.status_code == 401
    assert refused.json()["code"] == "session_revoked"


# --- logout, me, switch --------------------------------------------------------------------------


async def test_logout_makes_the_refresh_token_fail_and_leaves_other_sessions_working(
    client: Client,
) -> None:
    phone = await login(client)
    laptop = await login(client)

    out = await client.post("/auth/logout", headers=bearer(phone["access_token"]))

    assert out.status_code == 204
    refused = await client.post("/auth/refresh", json={"refresh_token": phone["refresh_token"]})
    assert refused.status_code == 401
    assert (await client.get("/auth/me", headers=bearer(phone["access_token"]))).status_code == 401
    assert (await client.get("/auth/me", headers=bearer(laptop["access_token"]))).status_code == 200
    still = await client.post("/auth/refresh", json={"refresh_token": laptop["refresh_token"]})
    assert still.status_code == 200


async def test_global_logout_ends_every_session_of_the_user(client: Client) -> None:
    phone = await login(client)
    laptop = await login(client)
    bob = await login(client, "bob@example.com")

    out = await client.post(
        "/auth/logout", headers=bearer(phone["access_token"]), json={"scope": "global"}
    )

    assert out.status_code == 204
    for session in (phone, laptop):
        refused = await client.post(
            "/auth/refresh", json={"refresh_token": session["refresh_token"]}
        )
        assert refused.status_code == 401
    assert (await client.get("/auth/me", headers=bearer(bob["access_token"]))).status_code == 200


async def test_me_describes_the_user_memberships_organization_and_session(
    client: Client, accounts: Accounts
) -> None:
    answer = await login(client, organization_id=accounts.globex)

    me = (await client.get("/auth/me", headers=bearer(answer["access_token"]))).json()

    assert me["user"]["user_id"] == accounts.ada
    assert me["user"]["email"] == "ada@example.com"
    assert {m["organization_id"]: m["role"] for m in me["memberships"]} == {
        accounts.acme: "org_admin",
        accounts.globex: "org_client",
    }
    assert me["organization"]["organization_id"] == accounts.globex
    assert me["session"]["id"] == claims_of(answer["access_token"])["sid"]
    assert me["session"]["expires_at"] > me["session"]["created_at"]


async def test_switching_organization_issues_new_tokens_and_ends_the_old_session(
    client: Client, accounts: Accounts
) -> None:
    acme = await login(client, organization_id=accounts.acme)

    switched = await client.post(
        "/auth/switch-organization",
        headers=bearer(acme["access_token"]),
        json={"organization_id": accounts.globex, "refresh_token": acme["refresh_token"]},
    )

    assert switched.status_code == 200
    claims = claims_of(switched.json()["access_token"])
    assert claims["organization"]["organization_id"] == accounts.globex
    assert claims["user"]["role"] == "org_client"
    assert claims["sid"] != claims_of(acme["access_token"])["sid"]
    assert (await client.get("/auth/me", headers=bearer(acme["access_token"]))).status_code == 401
    old_refresh = await client.post("/auth/refresh", json={"refresh_token": acme["refresh_token"]})
    assert old_refresh.status_code == 401


async def test_switching_to_an_organization_the_user_is_not_in_is_refused(
    client: Client, accounts: Accounts
) -> None:
    bob = await login(client, "bob@example.com")

    response = await client.post(
        "/auth/switch-organization",
        headers=bearer(bob["access_token"]),
        json={"organization_id": accounts.acme, "refresh_token": bob["refresh_token"]},
    )

    assert response.status_code == 403
    assert response.json()["code"] == "not_a_member"
    assert (await client.get("/auth/me", headers=bearer(bob["access_token"]))).status_code == 200
    # The refused switch did not spend the refresh token.
    refreshed = await client.post("/auth/refresh", json={"refresh_token": bob["refresh_token"]})
    assert refreshed.status_code == 200


# --- throttling and audit ------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["ada@example.com", "nobody@example.com"])
async def test_five_failures_from_one_address_lock_that_address_out_even_with_the_right_password(
    client: Client, email: str
) -> None:
    failures = [
        await client.post("/auth/login", json={"email": email, "password": "wrong password"})
        for _ in range(5)
    ]
    locked = await client.post("/auth/login", json={"email": email, "password": PASSWORD})

    assert [f.status_code for f in failures] == [401] * 5
    assert locked.status_code == 429
    assert locked.json()["code"] == "too_many_attempts"
    assert 0 < int(locked.headers["retry-after"]) <= 300


async def test_every_auth_event_is_audited_without_secrets(
    client: Client, auth_settings: Settings
) -> None:
    await client.post("/auth/login", json={"email": "ada@example.com", "password": "bad password"})
    answer = await login(client)
    refreshed = await client.post("/auth/refresh", json={"refresh_token": answer["refresh_token"]})
    await client.post("/auth/logout", headers=bearer(refreshed.json()["access_token"]))

    events = await rows(auth_settings, select(AuthEvent.type, AuthEvent.details, AuthEvent.ip))
    types = [t for t, _, _ in events]
    for expected in ("login_failed", "login_succeeded", "token_refreshed", "logout"):
        assert expected in types
    text = json.dumps([d for _, d, _ in events])
    for secret in (PASSWORD, "bad password", answer["refresh_token"], answer["access_token"]):
        assert secret not in text


# --- regressions from the security review -------------------------------------------------------


async def test_a_thief_cannot_shed_reuse_detection_by_switching_organization(
    auth_settings: Settings, accounts: Accounts
) -> None:
    settings = auth_settings.model_copy(update={"refresh_reuse_grace": 0})
    async with GatewayClient(settings) as client:
        victim = await login(client, organization_id=accounts.acme)
        thief = (
            await client.post("/auth/refresh", json={"refresh_token": victim["refresh_token"]})
        ).json()
        switched = (
            await client.post(
                "/auth/switch-organization",
                headers=bearer(thief["access_token"]),
                json={
                    "organization_id": accounts.globex,
                    "refresh_token": thief["refresh_token"],
                },
            )
        ).json()

        replay = await client.post("/auth/refresh", json={"refresh_token": victim["refresh_token"]})
        thief_me = await client.get("/auth/me", headers=bearer(switched["access_token"]))
        thief_refresh = await client.post(
            "/auth/refresh", json={"refresh_token": switched["refresh_token"]}
        )

    assert replay.status_code == 401
    assert replay.json()["code"] == "refresh_token_reused"
    assert thief_me.status_code == 401
    assert thief_refresh.status_code == 401


async def test_switching_organization_keeps_the_session_expiry(
    client: Client, accounts: Accounts
) -> None:
    first = await login(client, organization_id=accounts.acme)
    before = (await client.get("/auth/me", headers=bearer(first["access_token"]))).json()

    switched = await client.post(
        "/auth/switch-organization",
        headers=bearer(first["access_token"]),
        json={"organization_id": accounts.globex, "refresh_token": first["refresh_token"]},
    )
    after = (await client.get("/auth/me", headers=bearer(switched.json()["access_token"]))).json()

    assert after["session"]["id"] != before["session"]["id"]
    assert after["session"]["expires_at"] == before["session"]["expires_at"]


async def test_a_right_password_admitted_within_the_budget_succeeds_though_a_lock_fell_meanwhile(
    client: Client, auth_settings: Settings
) -> None:
    """A 429 for the right password alone, while the wrong ones got 401, would mark it."""
    from datetime import timedelta

    from sqlalchemy import update

    from gateway.sessions._throttle import client_key
    from gateway.store.models import LoginThrottle, utcnow

    runtime = runtime_of(client)

    class LockedMeanwhile(PasswordHashing):
        """The real verifier; while it works, concurrent failures lock the address."""

        async def verify(self, password_hash: str, password: str) -> bool:
            result = await super().verify(password_hash, password)
            engine = make_engine(auth_settings)
            async with make_sessionmaker(engine).begin() as db:
                await db.execute(
                    update(LoginThrottle)
                    .where(
                        LoginThrottle.email_key == "ada@example.com",
                        LoginThrottle.client_key == client_key(TEST_CLIENT),
                    )
                    .values(lockouts=1, locked_until=utcnow() + timedelta(minutes=5))
                )
            await engine.dispose()
            return result

    runtime.passwords = LockedMeanwhile(workers=1)
    response = await client.post(
        "/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    after = await client.post(
        "/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )

    assert response.status_code == 200
    assert after.status_code == 429


async def test_failures_while_locked_neither_extend_nor_escalate_the_lock(
    auth_settings: Settings, accounts: Accounts
) -> None:
    from gateway.sessions._throttle import record_failure, reserve_attempt
    from gateway.sessions.errors import TooManyAttempts
    from gateway.store.models import LoginThrottle, utcnow

    # The per-email ceiling is out of reach here: this is about one address's lock.
    auth_settings = auth_settings.model_copy(update={"login_email_max_failures": 1000})
    budget = auth_settings.login_max_failures
    email, address = "x@example.com", "203.0.113.7"
    engine = make_engine(auth_settings)
    now = utcnow()
    async with make_sessionmaker(engine).begin() as db:
        for _ in range(budget):
            await reserve_attempt(db, email, address, now=now, settings=auth_settings)
        with pytest.raises(TooManyAttempts):
            await reserve_attempt(db, email, address, now=now, settings=auth_settings)
    async with make_sessionmaker(engine).begin() as db:
        # The budget's failures finish together: the first locks, the others were in flight.
        locks = [
            await record_failure(db, email, address, now=now, settings=auth_settings)
            for _ in range(budget)
        ]
        row = await db.get(LoginThrottle, (email, address))
        assert row is not None
        locked_until, lockouts = row.locked_until, row.lockouts
        with pytest.raises(TooManyAttempts):
            await reserve_attempt(db, email, address, now=now, settings=auth_settings)
        await db.refresh(row)
    await engine.dispose()

    assert locks == [True] + [False] * (budget - 1)
    assert (row.locked_until, row.lockouts) == (locked_until, lockouts) == (locked_until, 1)
    assert locked_until is not None
    assert (locked_until - now).total_seconds() == auth_settings.login_lockout


async def test_suspension_ends_every_session_so_reactivation_revives_nothing(
    client: Client, auth_settings: Settings
) -> None:
    from gateway.accounts.users import set_user_status

    answer = await login(client)
    engine = make_engine(auth_settings)
    for status in ("suspended", "active"):
        async with make_sessionmaker(engine).begin() as db:
            await set_user_status(db=db, email="ada@example.com", status=status)
    await engine.dispose()

    me = await client.get("/auth/me", headers=bearer(answer["access_token"]))
    refreshed = await client.post("/auth/refresh", json={"refresh_token": answer["refresh_token"]})

    assert me.status_code == 401
    assert refreshed.status_code == 401
    assert (await login(client))["access_token"]  # the account itself works again


async def test_cookie_logout_works_with_only_the_refresh_cookie_left(client: Client) -> None:
    signed_in = await client.post(
        "/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "cookie": True}
    )
    csrf = signed_in.json()["csrf_token"]
    refresh_cookie = signed_in.cookies["gw_refresh"]
    client.cookies.clear()
    cookies = f"gw_refresh={refresh_cookie}; gw_csrf={csrf}"

    out = await client.post("/auth/logout", headers={"Cookie": cookies, "X-CSRF-Token": csrf})
    again = await client.post("/auth/refresh", headers={"Cookie": cookies, "X-CSRF-Token": csrf})

    assert out.status_code == 204
    assert again.status_code == 401
