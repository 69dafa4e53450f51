"""What the gateway's own answers (everything but the PostgREST mount) tell browsers and caches.

Every answer, the router's own 404 and 405 included, carries ``X-Request-Id`` and a log line;
JSON answers cannot be sniffed into a page or framed; ``/auth`` answers are never stored by a
cache; the interactive docs are off unless an operator turns them on, and then load only pinned
assets under a policy that allows exactly those.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.settings import Settings
from gateway.web.api_docs import SWAGGER_ASSETS
from tests.integration.conftest import PASSWORD, Accounts, Client, bearer, login
from tests.support.in_process import GatewayClient

# Headers do not depend on the store: one store is enough.
pytestmark = pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)

JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"
ROUTER_ERRORS = [
    ("GET", "/no/such/page", 404),
    ("DELETE", "/healthz", 405),
    ("GET", "/auth/login", 405),
    ("GET", "/auth/no-such-endpoint", 404),
    ("GET", "/schema/swagger", 404),  # the interactive docs are off by default
]


def assert_locked_down_json(response: httpx.Response, label: str) -> None:
    assert response.headers["content-type"].startswith("application/json"), label
    assert response.headers["x-content-type-options"] == "nosniff", label
    assert response.headers["content-security-policy"] == JSON_POLICY, label


def request_log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "gateway.request"]


@pytest.mark.parametrize(("method", "path", "status"), ROUTER_ERRORS)
async def test_router_errors_carry_a_request_id_and_a_log_line(
    client: Client, caplog: pytest.LogCaptureFixture, method: str, path: str, status: int
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.request")

    response = await client.request(method, path, headers={"X-Request-Id": "lost-1"})

    assert response.status_code == status
    assert response.headers["x-request-id"] == "lost-1"
    assert_locked_down_json(response, path)
    lines = request_log_lines(caplog)
    assert len(lines) == 1
    assert f"id=lost-1 method={method} path={path} status={status} " in lines[0]


async def test_router_errors_through_the_server_entry_point_carry_a_request_id(
    auth_settings: Settings, accounts: Accounts, caplog: pytest.LogCaptureFixture
) -> None:
    # What `gateway serve` runs: the front door, which hands everything but /rest to Litestar.
    caplog.set_level(logging.INFO, logger="gateway.request")
    async with GatewayClient(auth_settings) as server:
        response = await server.get("/no/such/page", headers={"X-Request-Id": "lost-2"})

    assert response.status_code == 404
    assert response.headers["x-request-id"] == "lost-2"
    assert_locked_down_json(response, "/no/such/page")
    assert any("id=lost-2 " in line and "status=404" in line for line in request_log_lines(caplog))


async def test_every_json_answer_of_the_gateway_is_locked_down(client: Client) -> None:
    token = (await login(client))["access_token"]
    answers = {
        "/healthz": await client.get("/healthz"),
        "/readyz": await client.get("/readyz"),
        "/.well-known/jwks.json": await client.get("/.well-known/jwks.json"),
        "/.well-known/openid-configuration": await client.get("/.well-known/openid-configuration"),
        "/auth/me": await client.get("/auth/me", headers=bearer(token)),
        "/auth/me anonymous": await client.get("/auth/me"),
    }

    for label, response in answers.items():
        assert_locked_down_json(response, label)


async def test_the_openapi_document_is_served_and_cannot_be_sniffed(client: Client) -> None:
    for path in ("/schema", "/schema/openapi.json"):
        response = await client.get(path)

        assert response.status_code == 200
        assert response.json()["openapi"].startswith("3.")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == JSON_POLICY


async def test_every_auth_answer_is_never_stored_by_a_cache(
    client: Client, accounts: Accounts
) -> None:
    signed_in = await login(client)
    token = signed_in["access_token"]
    answers = {
        "login 200": await client.post(
            "/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
        ),
        "login 401": await client.post(
            "/auth/login", json={"email": "ada@example.com", "password": "wrong password!"}
        ),
        "login 400": await client.post("/auth/login", json={"email": 1}),
        "me 200": await client.get("/auth/me", headers=bearer(token)),
        "me 401": await client.get("/auth/me", headers=bearer("not-a-token")),
        "refresh 200": await client.post(
            "/auth/refresh", json={"refresh_token": signed_in["refresh_token"]}
        ),
        "switch 200": await client.post(
            "/auth/switch-organization",
            json={"organization_id": accounts.globex},
            headers=bearer(token),
        ),
        "unknown 404": await client.get("/auth/no-such-endpoint"),
        "method 405": await client.get("/auth/login"),
    }

    for label, response in answers.items():
        assert response.headers["cache-control"] == "no-store", label


async def test_the_jwks_stays_publicly_cacheable(client: Client) -> None:
    response = await client.get("/.well-known/jwks.json")

    assert response.headers["cache-control"] == "public, max-age=300"


def script_and_style_urls(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", page)


@pytest.fixture
async def docs_client(auth_settings: Settings, accounts: Accounts) -> AsyncIterator[Client]:
    settings = auth_settings.model_copy(update={"api_docs": True})
    async with GatewayClient(settings) as test_client:
        yield test_client


async def test_api_docs_when_turned_on_load_only_pinned_assets(docs_client: Client) -> None:
    response = await docs_client.get("/schema/swagger")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    tags = re.findall(r"<(?:script|link)\b[^>]*>", page)
    external = [tag for tag in tags if re.search(r"""(?:src|href)=""", tag)]
    assert sorted(script_and_style_urls(page)) == sorted(asset.url for asset in SWAGGER_ASSETS)
    for asset in SWAGGER_ASSETS:
        tag = next(tag for tag in external if asset.url in tag)
        assert f'integrity="{asset.integrity}"' in tag
        assert 'crossorigin="anonymous"' in tag
        assert re.fullmatch(r"sha384-[A-Za-z0-9+/]{64}", asset.integrity)
    assert "@main" not in page  # no asset that moves under a branch name


async def test_api_docs_policy_allows_exactly_the_pinned_assets(docs_client: Client) -> None:
    response = await docs_client.get("/schema/swagger")

    policy = dict(
        directive.partition(" ")[::2]
        for directive in response.headers["content-security-policy"].split("; ")
    )
    inline_scripts = re.findall(r"<script>(.*?)</script>", response.text, re.S)
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in inline_scripts
    ]
    scripts = [a.url for a in SWAGGER_ASSETS if a.url.endswith(".js")]
    styles = [a.url for a in SWAGGER_ASSETS if a.url.endswith(".css")]

    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert sorted(policy["script-src"].split()) == sorted(scripts + hashes)
    assert styles[0] in policy["style-src"].split()
    assert policy["connect-src"] == "'self'"  # the OpenAPI document and "try it out" only
    assert "'unsafe-eval'" not in response.headers["content-security-policy"]
    assert len(inline_scripts) == 1
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


async def test_api_docs_when_turned_on_leave_the_openapi_document_locked_down(
    docs_client: Client,
) -> None:
    response = await docs_client.get("/schema/openapi.json")

    assert response.status_code == 200
    assert response.headers["content-security-policy"] == JSON_POLICY
