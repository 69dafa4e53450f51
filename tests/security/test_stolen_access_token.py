"""An access token alone never becomes a long-lived session (switch-organization).

Before, ``POST /auth/switch-organization`` with nothing but a stolen access token minted a new
refresh token for a session as long as the victim's, and the victim's refresh token then failed
with ``session_revoked``: the thief kept the session and the owner was logged out.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import update

from gateway.settings import Settings
from gateway.store.engine import make_engine, make_sessionmaker
from gateway.store.models import RefreshToken
from tests.integration.conftest import Accounts, Client, bearer, login

SWITCH = "/auth/switch-organization"


def no_session_handed_out(response: httpx.Response) -> bool:
    return (
        response.status_code >= 400
        and "refresh_token" not in response.json()
        and "set-cookie" not in response.headers
    )


async def test_a_thief_with_only_the_access_token_cannot_keep_the_session_or_end_the_owners(
    client: Client, accounts: Accounts
) -> None:
    owner = await login(client, organization_id=accounts.acme)
    stolen = bearer(owner["access_token"])
    own_account = await login(client, "bob@example.com")

    attempts = {
        "bearer only": await client.post(SWITCH, headers=stolen, json={"organization_id": 2}),
        "bearer only, other org": await client.post(
            SWITCH, headers=stolen, json={"organization_id": accounts.globex}
        ),
        "bearer only, same org": await client.post(
            SWITCH, headers=stolen, json={"organization_id": accounts.acme}
        ),
        "with the thief's own refresh token": await client.post(
            SWITCH,
            headers=stolen,
            json={
                "organization_id": accounts.globex,
                "refresh_token": own_account["refresh_token"],
            },
        ),
        "with a made-up refresh token": await client.post(
            SWITCH,
            headers=stolen,
            json={"organization_id": accounts.globex, "refresh_token": "pgw_rt_" + "A" * 43},
        ),
    }
    owner_refresh = await client.post(
        "/auth/refresh", json={"refresh_token": owner["refresh_token"]}
    )

    assert all(no_session_handed_out(answer) for answer in attempts.values()), {
        label: (answer.status_code, answer.text) for label, answer in attempts.items()
    }
    assert attempts["bearer only"].status_code == 400
    assert attempts["bearer only"].json()["code"] == "refresh_token_required"
    assert "refresh_token" in attempts["bearer only"].json()["message"]
    assert attempts["with the thief's own refresh token"].json()["code"] == "invalid_refresh_token"
    assert attempts["with a made-up refresh token"].json()["code"] == "invalid_refresh_token"
    # The owner's session is untouched.
    assert owner_refresh.status_code == 200
    renewed = owner_refresh.json()
    assert (
        await client.get("/auth/me", headers=bearer(renewed["access_token"]))
    ).status_code == 200


async def test_switching_to_the_organization_the_session_already_speaks_for_is_refused(
    client: Client, accounts: Accounts
) -> None:
    tokens = await login(client, organization_id=accounts.acme)

    response = await client.post(
        SWITCH,
        headers=bearer(tokens["access_token"]),
        json={"organization_id": accounts.acme, "refresh_token": tokens["refresh_token"]},
    )
    refreshed = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})

    assert response.status_code == 409
    assert response.json()["code"] == "already_in_organization"
    assert refreshed.status_code == 200  # the refused switch did not spend the refresh token


async def switch(client: Client, tokens: dict[str, Any], organization_id: int) -> dict[str, Any]:
    response = await client.post(
        SWITCH,
        headers=bearer(tokens["access_token"]),
        json={"organization_id": organization_id, "refresh_token": tokens["refresh_token"]},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def test_the_old_sessions_refresh_token_after_a_switch_ends_the_new_session_at_once(
    client: Client, accounts: Accounts
) -> None:
    """Even inside the refresh grace window: a switch has no race to forgive."""
    before = await login(client, organization_id=accounts.acme)
    after = await switch(client, before, accounts.globex)

    replay = await client.post("/auth/refresh", json={"refresh_token": before["refresh_token"]})

    assert replay.status_code == 401
    assert replay.json()["code"] == "refresh_token_reused"
    assert (await client.get("/auth/me", headers=bearer(after["access_token"]))).status_code == 401
    again = await client.post("/auth/refresh", json={"refresh_token": after["refresh_token"]})
    assert again.status_code == 401


@pytest.mark.parametrize("endpoint", ["refresh", "switch"])
async def test_an_unused_token_of_a_replaced_session_counts_as_reuse_and_ends_the_replacement(
    client: Client, accounts: Accounts, auth_settings: Settings, endpoint: str
) -> None:
    """A session replaced by the old switch (which left the owner's token unused) ends too."""
    owner = await login(client, organization_id=accounts.acme)
    thief = await switch(client, owner, accounts.globex)
    # What the old code left behind: the owner's refresh token never spent.
    engine = make_engine(auth_settings)
    async with make_sessionmaker(engine).begin() as db:
        await db.execute(update(RefreshToken).values(used_at=None, successor_hash=None))
    await engine.dispose()

    if endpoint == "refresh":
        presented = await client.post(
            "/auth/refresh", json={"refresh_token": owner["refresh_token"]}
        )
    else:
        presented = await client.post(
            SWITCH,
            headers=bearer(owner["access_token"]),
            json={"organization_id": accounts.globex, "refresh_token": owner["refresh_token"]},
        )

    assert presented.status_code == 401
    assert presented.json()["code"] == "refresh_token_reused"
    assert (await client.get("/auth/me", headers=bearer(thief["access_token"]))).status_code == 401


async def test_a_cookie_client_switches_with_its_refresh_cookie_and_csrf_token(
    client: Client, accounts: Accounts
) -> None:
    signed_in = await client.post(
        "/auth/login",
        json={"email": "ada@example.com", "password": "correct horse battery", "cookie": True},
    )
    csrf = signed_in.json()["csrf_token"]

    without_csrf = await client.post(SWITCH, json={"organization_id": accounts.globex})
    switched = await client.post(
        SWITCH, json={"organization_id": accounts.globex}, headers={"X-CSRF-Token": csrf}
    )

    assert without_csrf.status_code == 403
    assert without_csrf.json()["code"] == "csrf_failed"
    assert switched.status_code == 200, switched.text
    assert "refresh_token" not in switched.json()
    assert switched.json()["organization"]["organization_id"] == accounts.globex
    me = await client.get("/auth/me")
    assert me.json()["organization"]["organization_id"] == accounts.globex
