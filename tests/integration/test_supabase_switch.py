"""GATEWAY_SUPABASE: /auth/v1 and the /rest/v1 mount are there by default, and gone when false.

In process (the real application and mounts) with a recording upstream that shows which path
reached "PostgREST".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.settings import Settings
from tests.integration.conftest import Accounts
from tests.support.in_process import GatewayClient
from tests.support.upstream import RecordingUpstream

pytestmark = pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)


@pytest.fixture
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream().start()
    yield server
    server.close()


@pytest.fixture
def switch_settings(
    migrated_store: Settings, tmp_path: Path, upstream: RecordingUpstream
) -> Settings:
    return migrated_store.model_copy(
        update={
            "keys_dir": f"{tmp_path}/keys",
            "cookie_secure": False,
            "auth_rate_limit": 100_000,
            "upstream_url": upstream.url,
        }
    )


def request_line(head: bytes) -> bytes:
    return head.split(b"\r\n", 1)[0]


def test_gateway_supabase_is_on_by_default(switch_settings: Settings) -> None:
    assert Settings.model_fields["supabase"].default is True
    assert switch_settings.supabase is True


async def test_with_gateway_supabase_on_auth_v1_answers_and_a_table_v1_is_rest_v1_v1(
    switch_settings: Settings, accounts: Accounts, upstream: RecordingUpstream
) -> None:
    async with GatewayClient(switch_settings.model_copy(update={"supabase": True})) as client:
        settings = await client.get("/auth/v1/settings")
        before = len(upstream.heads)
        table = await client.get("/rest/v1/v1")
        rows = await client.get("/rest/v1/projects")

    assert settings.status_code == 200, settings.text
    assert table.status_code == 200, table.text
    assert rows.status_code == 200, rows.text
    assert [request_line(h) for h in upstream.heads[before:]] == [
        b"GET /v1 HTTP/1.1",
        b"GET /projects HTTP/1.1",
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/auth/v1/settings"),
        ("POST", "/auth/v1/token?grant_type=password"),
        ("GET", "/auth/v1/user"),
        ("POST", "/auth/v1/logout"),
    ],
)
async def test_with_gateway_supabase_off_auth_v1_is_an_unknown_path(
    switch_settings: Settings, accounts: Accounts, method: str, path: str
) -> None:
    async with GatewayClient(switch_settings.model_copy(update={"supabase": False})) as client:
        response = await client.request(method, path, json={})
        unknown = await client.request(method, "/auth/v2/nothing-here", json={})

    assert response.status_code == 404, response.text
    assert response.json()["code"] == unknown.json()["code"] == "not_found"
    assert "error_code" not in response.json()


async def test_with_gateway_supabase_off_rest_v1_is_the_table_v1_at_the_one_mount(
    switch_settings: Settings, accounts: Accounts, upstream: RecordingUpstream
) -> None:
    async with GatewayClient(switch_settings.model_copy(update={"supabase": False})) as client:
        before = len(upstream.heads)
        table = await client.get("/rest/v1")
        row = await client.get("/rest/v1?id=eq.1")

    assert table.status_code == 200, table.text
    assert row.status_code == 200, row.text
    assert [request_line(h) for h in upstream.heads[before:]] == [
        b"GET /v1 HTTP/1.1",
        b"GET /v1?id=eq.1 HTTP/1.1",
    ]
