"""``gateway explain``: a token the gateway would refuse is never explained as a valid one.

The token can come on stdin (``-``), so it stays out of ``ps`` and the shell's history. A real
store (SQLite), a real keystore and tokens from the real ``/auth/login``.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import update

from gateway.cli import cli
from gateway.store.engine import make_engine
from gateway.store.models import Session, utcnow
from gateway.tokens.signing import load_keyring, sign_access_token
from tests.conftest import settings_from
from tests.support.in_process import SyncGatewayClient

PASSWORD = "correct horse battery"


def gateway(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, env=env)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A store with ada (org_admin of Acme) in it, and a keystore."""
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
        "GATEWAY_KEYS_DIR": str(tmp_path / "keys"),
        "GATEWAY_COOKIE_SECURE": "false",
        "GATEWAY_PASSWORD_HASH_WORKERS": "1",
    }
    org = json.loads(gateway(env, "orgs", "create", "Acme", "--json").stdout)["organization_id"]
    created = gateway(
        env,
        *("users", "create", "ada@example.com", "--password-stdin"),
        *("--org", str(org), "--org-role", "org_admin"),
        stdin=PASSWORD,
    )
    assert created.exit_code == 0, created.stderr
    assert gateway(env, "keys", "init").exit_code == 0
    return env


def login(env: dict[str, str]) -> str:
    with SyncGatewayClient(settings_from(env)) as client:
        response = client.post(
            "/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def logout(env: dict[str, str], token: str) -> None:
    with SyncGatewayClient(settings_from(env)) as client:
        response = client.post(
            "/auth/logout", json={}, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 204, response.text


def expire_sessions(env: dict[str, str]) -> None:
    async def run() -> None:
        engine = make_engine(settings_from(env))
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    update(Session).values(expires_at=utcnow() - timedelta(minutes=1))
                )
        finally:
            await engine.dispose()

    asyncio.run(run())


def assert_refused(result: Result, code: str) -> None:
    assert result.exit_code == 1, result.stdout
    assert result.stdout == ""  # nothing that reads as an explanation
    assert result.stderr.startswith("gateway: error: The token would be refused"), result.stderr
    assert f"({code})" in result.stderr


def test_explain_reads_the_token_from_stdin_when_given_a_dash(env: dict[str, str]) -> None:
    token = login(env)

    from_stdin = gateway(env, "explain", "-", "--json", stdin=token + "\n")
    from_argument = gateway(env, "explain", token, "--json")

    assert from_stdin.exit_code == 0, from_stdin.stderr
    assert json.loads(from_stdin.stdout) == json.loads(from_argument.stdout)
    assert json.loads(from_stdin.stdout)["claims"]["user"]["email"] == "ada@example.com"


def test_explain_with_a_dash_and_nothing_on_stdin_is_refused(env: dict[str, str]) -> None:
    result = gateway(env, "explain", "-", stdin="")

    assert result.exit_code == 1
    assert result.stderr == "gateway: error: no token on standard input (pipe it in, one line)\n"


def test_explain_refuses_a_token_of_a_revoked_session(env: dict[str, str]) -> None:
    token = login(env)
    logout(env, token)

    assert_refused(gateway(env, "explain", "-", stdin=token), "session_revoked")


def test_explain_refuses_a_token_of_a_suspended_user(env: dict[str, str]) -> None:
    token = login(env)
    assert gateway(env, "users", "suspend", "ada@example.com").exit_code == 0

    assert_refused(gateway(env, "explain", "-", stdin=token), "user_suspended")


def test_explain_refuses_a_token_whose_session_has_expired(env: dict[str, str]) -> None:
    token = login(env)
    expire_sessions(env)

    assert_refused(gateway(env, "explain", "-", stdin=token), "session_expired")


def test_explain_refuses_an_expired_token(env: dict[str, str]) -> None:
    claims = jwt.decode(login(env), options={"verify_signature": False})
    claims.update(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    expired = sign_access_token(load_keyring(settings_from(env)), claims)

    assert_refused(gateway(env, "explain", "-", stdin=expired), "invalid_token")


def test_explain_refuses_a_signed_token_that_names_no_session_of_the_store(
    env: dict[str, str],
) -> None:
    # What `gateway doctor` signs as its probe: a genuine signature, but no session behind it.
    now = int(time.time())
    probe = {
        "iss": "http://127.0.0.1:8000",
        "sub": "0",
        "iat": now,
        "exp": now + 60,
        "sid": "doctor-probe",
        "role": "authenticated",
        "token_type": "access_token",
        "user": None,
        "organization": None,
    }
    token = sign_access_token(load_keyring(settings_from(env)), probe)

    assert_refused(gateway(env, "explain", "-", stdin=token), "session_revoked")


def test_explain_refuses_a_token_whose_role_was_taken_off_the_allow_list(
    env: dict[str, str],
) -> None:
    token = login(env)  # role "authenticated"
    narrowed = {
        **env,
        "GATEWAY_ALLOWED_ROLES": "member",
        "GATEWAY_AUTHENTICATED_ROLE": "member",
    }

    assert_refused(gateway(narrowed, "explain", "-", stdin=token), "invalid_token")
