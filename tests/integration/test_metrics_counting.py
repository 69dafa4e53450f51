"""The sign-in counters at /auth/v1 (GoTrue's shapes translate the codes the counters read)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import scrape
from gateway.settings import Settings
from tests.integration.conftest import PASSWORD, Accounts, Client, login
from tests.support.in_process import GatewayClient

pytestmark = pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)


def sign_ins() -> dict[str, float]:
    return {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(scrape().decode())
        for sample in family.samples
        if sample.name == "gateway_sign_ins_total"
    }


async def test_gotrue_sign_ins_are_counted_by_outcome(client: Client, accounts: Accounts) -> None:
    before = sign_ins()
    url = "/auth/v1/token?grant_type=password"
    good = await client.post(url, json={"email": "ada@example.com", "password": PASSWORD})
    bad = await client.post(url, json={"email": "ada@example.com", "password": "wrong one!"})
    malformed = await client.post(url, json={"email": "ada@example.com"})
    assert (good.status_code, bad.status_code, malformed.status_code) == (200, 400, 400)
    assert bad.json()["error_code"] == "invalid_credentials"
    after = sign_ins()
    assert after["succeeded"] - before.get("succeeded", 0) == 1
    assert after["failed"] - before.get("failed", 0) == 1
    assert after["locked_out"] - before.get("locked_out", 0) == 0


def refresh_reuses() -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(scrape().decode())
        for sample in family.samples
        if sample.name == "gateway_refresh_token_reuse_detected_total"
    )


@pytest.mark.parametrize(
    "query",
    [
        "grant_type=pass%77ord",
        "grant_type=%70assword",
        # Litestar keeps the last of repeated parameters: this is a password sign-in.
        "x=1&grant_type=refresh_token&grant_type=password",
    ],
)
async def test_a_refused_gotrue_sign_in_counts_however_its_grant_is_spelled(
    client: Client, accounts: Accounts, query: str
) -> None:
    before = sign_ins()
    bad = await client.post(
        f"/auth/v1/token?{query}", json={"email": "ada@example.com", "password": "wrong one!"}
    )
    assert bad.status_code == 400
    assert bad.json()["error_code"] == "invalid_credentials"
    assert sign_ins()["failed"] - before.get("failed", 0) == 1


async def test_a_reused_gotrue_refresh_counts_however_its_grant_is_spelled(
    auth_settings: Settings, accounts: Accounts
) -> None:
    settings = auth_settings.model_copy(update={"refresh_reuse_grace": 0})
    async with GatewayClient(settings) as client:
        first = await login(client)
        old = {"refresh_token": first["refresh_token"]}
        assert (await client.post("/auth/refresh", json=old)).status_code == 200
        before = refresh_reuses()
        # The last grant_type wins: a refresh, whatever the first one says.
        replay = await client.post(
            "/auth/v1/token?grant_type=password&grant_type=refresh_token", json=old
        )
    assert replay.json()["error_code"] == "refresh_token_already_used", replay.text
    assert refresh_reuses() - before == 1
