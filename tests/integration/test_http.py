"""The gateway's own HTTP endpoints, served in process by the real application."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.settings import Settings
from tests.conftest import settings_from
from tests.support.in_process import GatewayClient
from tests.support.postgres import free_port


class _Root(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"paths": {}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[str]:
    """A real HTTP server where PostgREST would be (readiness only asks that it answers).

    It runs in its own thread: the in-process test client drives the app from another thread
    while the test's event loop waits, so a server on that loop could not answer.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
async def client(migrated_store: Settings, upstream: str) -> AsyncIterator[GatewayClient]:
    settings = migrated_store.model_copy(update={"upstream_url": upstream})
    async with GatewayClient(settings) as test_client:
        yield test_client


async def test_healthz_answers_200(client: GatewayClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_200_when_the_store_is_reachable_and_migrated(
    client: GatewayClient,
) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"store": "ok", "keystore": "ok", "upstream": "ok"},
    }


async def test_readyz_answers_503_when_the_store_is_not_migrated(
    store_settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "store").mkdir()  # an empty SQLite file will be created there
    async with GatewayClient(store_settings) as client:
        response = await client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "store_unavailable"
    assert body["checks"]["store"] == "not migrated"
    assert body["checks"]["keystore"] == "ok"


async def test_readyz_answers_503_when_the_store_is_unreachable() -> None:
    settings = settings_from(
        {"GATEWAY_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/none"}
    )
    async with GatewayClient(settings) as client:
        response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["store"] == "unreachable"
    assert response.json()["code"] == "store_unavailable"
    assert set(response.json()) == {"code", "message", "checks"}


async def test_readyz_answers_503_when_postgrest_does_not_answer(migrated_store: Settings) -> None:
    settings = migrated_store.model_copy(update={"upstream_url": f"http://127.0.0.1:{free_port()}"})
    async with GatewayClient(settings) as client:
        response = await client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["code"] == "not_ready"
    assert response.json()["checks"] == {
        "store": "ok",
        "keystore": "ok",
        "upstream": "unreachable",
    }


async def test_every_answer_carries_a_request_id(client: GatewayClient) -> None:
    generated = await client.get("/healthz")
    kept = await client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    forged = await client.get("/healthz", headers={"X-Request-Id": "x\tstatus=500 level=ERROR"})

    assert len(generated.headers["x-request-id"]) == 24
    assert kept.headers["x-request-id"] == "abc-123"
    assert forged.headers["x-request-id"] != "x\tstatus=500 level=ERROR"
    assert len(forged.headers["x-request-id"]) == 24


async def test_one_log_line_per_request_without_the_query_string(
    client: GatewayClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.request")

    await client.get("/healthz?access_token=secret-token", headers={"X-Request-Id": "r-1"})

    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.request"]
    assert len(lines) == 1
    assert "id=r-1 method=GET path=/healthz status=200" in lines[0]
    assert "secret-token" not in caplog.text


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/path", 404, "not_found"),
        ("POST", "/healthz", 405, "method_not_allowed"),
        ("DELETE", "/readyz", 405, "method_not_allowed"),
    ],
)
async def test_framework_errors_are_json_with_a_code_and_a_message(
    client: GatewayClient, method: str, path: str, status: int, code: str
) -> None:
    response = await client.request(method, path)

    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert set(body) == {"code", "message"}
    assert body["message"].endswith(".")


async def test_the_openapi_document_is_served_at_schema(client: GatewayClient) -> None:
    response = await client.get("/schema")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert {"/healthz", "/readyz"} <= set(document["paths"])
    assert (await client.get("/schema/openapi.json")).json() == document


async def test_the_jwks_is_served_with_a_cache_lifetime_and_no_private_members(
    client: GatewayClient, migrated_store: Settings
) -> None:
    response = await client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.headers["cache-control"] == f"public, max-age={migrated_store.jwks_max_age}"
    keys = response.json()["keys"]
    assert len(keys) == 2  # a new keystore: the current key and the next one
    for jwk in keys:
        assert {"kid", "alg", "use"} <= set(jwk)
        assert jwk["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
    on_disk = (Path(migrated_store.keys_dir) / "jwks.json").read_bytes()
    assert response.content == on_disk


async def test_discovery_names_the_issuer_the_jwks_and_the_algorithms(
    client: GatewayClient, migrated_store: Settings
) -> None:
    document = (await client.get("/.well-known/openid-configuration")).json()

    assert document["issuer"] == migrated_store.issuer
    assert document["jwks_uri"] == migrated_store.issuer + "/.well-known/jwks.json"
    assert document["access_token_signing_alg_values_supported"] == ["ES256"]
    assert document["me_endpoint"] == migrated_store.issuer + "/auth/me"
    assert "token_endpoint" not in document
    assert "id_token_signing_alg_values_supported" not in document
