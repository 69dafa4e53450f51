"""The sign-in counters at /auth/v1 (GoTrue's shapes translate the codes the counters read)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import scrape
from tests.integration.conftest import PASSWORD, Accounts, Client

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
