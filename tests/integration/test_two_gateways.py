"""Two gateway processes on one PostgreSQL store agree on lockouts and sessions."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.cli import cli_stdout
from tests.support.server import run_gateway

PASSWORD = "correct horse battery"


cli = cli_stdout


@pytest.mark.postgres
def test_a_lockout_earned_on_one_gateway_holds_on_the_other(
    tmp_path: Path, postgres_url: str
) -> None:
    env = {
        "GATEWAY_DATABASE_URL": postgres_url.replace("postgresql://", "postgresql+asyncpg://"),
        "GATEWAY_DATABASE_SCHEMA": "two_gateways",
        "GATEWAY_KEYS_DIR": str(tmp_path / "keys"),
    }
    cli(env, tmp_path, "db", "upgrade")
    cli(env, tmp_path, "users", "create", "ada@example.com", "--password-stdin", stdin=PASSWORD)

    with run_gateway(env, cwd=tmp_path) as first, run_gateway(env, cwd=tmp_path) as second:
        wrong = {"email": "ada@example.com", "password": "wrong password"}
        statuses = [
            httpx.post(f"{base}/auth/login", json=wrong).status_code
            for base in (first, second, first, second, first)
        ]
        right = {"email": "ada@example.com", "password": PASSWORD}
        on_second = httpx.post(f"{second}/auth/login", json=right)
        on_first = httpx.post(f"{first}/auth/login", json=right)

    assert statuses == [401] * 5
    assert on_second.status_code == on_first.status_code == 429
    assert on_second.json()["code"] == "too_many_attempts"
    assert int(on_second.headers["retry-after"]) > 0


@pytest.mark.postgres
def test_a_logout_on_one_gateway_ends_the_session_on_the_other(
    tmp_path: Path, postgres_url: str
) -> None:
    env = {
        "GATEWAY_DATABASE_URL": postgres_url.replace("postgresql://", "postgresql+asyncpg://"),
        "GATEWAY_DATABASE_SCHEMA": "two_gateways_logout",
        "GATEWAY_KEYS_DIR": str(tmp_path / "keys"),
    }
    cli(env, tmp_path, "db", "upgrade")
    cli(env, tmp_path, "users", "create", "ada@example.com", "--password-stdin", stdin=PASSWORD)

    with run_gateway(env, cwd=tmp_path) as first, run_gateway(env, cwd=tmp_path) as second:
        tokens = httpx.post(
            f"{first}/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
        ).json()
        auth = {"Authorization": f"Bearer {tokens['access_token']}"}
        before = httpx.get(f"{second}/auth/me", headers=auth).status_code
        httpx.post(f"{second}/auth/logout", headers=auth)
        after = httpx.get(f"{first}/auth/me", headers=auth)
        refresh = httpx.post(
            f"{first}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )

    assert before == 200
    assert after.status_code == 401
    assert after.json()["code"] == "session_revoked"
    assert refresh.status_code == 401
