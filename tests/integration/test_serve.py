"""``gateway serve`` as a real process: the first Quick start command, on a fresh folder."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.cli import run_cli
from tests.support.server import run_gateway


def test_serve_on_embedded_defaults_creates_the_store_and_answers_healthz(
    tmp_path: Path,
) -> None:
    with run_gateway({}, cwd=tmp_path) as base_url:
        health = httpx.get(f"{base_url}/healthz")
        ready = httpx.get(f"{base_url}/readyz")

    assert health.status_code == 200
    # Everything of the gateway's own is ready; PostgREST is not running in this test.
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"store": "ok", "keystore": "ok", "upstream": "unreachable"}
    assert (tmp_path / "gateway.db").exists()
    log = next(tmp_path.glob("gateway-*.log")).read_text()
    assert "path=/healthz status=200" in log


@pytest.mark.postgres
def test_serve_refuses_an_unmigrated_postgresql_store_with_the_command_to_run(
    tmp_path: Path, postgres_url: str
) -> None:
    env = {
        "GATEWAY_DATABASE_URL": postgres_url.replace("postgresql://", "postgresql+asyncpg://"),
        "GATEWAY_DATABASE_SCHEMA": "serve_unmigrated",
    }

    result = run_cli(env, tmp_path, "serve")

    assert result.returncode == 1
    assert "run `gateway db upgrade`" in result.stderr
    assert "Traceback" not in result.stderr
