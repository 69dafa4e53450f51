"""Key rotation with the real gateway process, the real CLI and the real PostgREST.

A token signed before a rotation keeps working in the gateway and in PostgREST after it; the
new current key's tokens work at once; a pruned key's tokens stop working in both.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.e2e.conftest import StartPostgREST, TodosDatabase
from tests.support.cli import cli_stdout
from tests.support.postgrest import PostgREST, http_get
from tests.support.server import run_gateway
from tests.support.waiting import wait_for

PASSWORD = "correct horse battery"
ROTATION_DEADLINE = 2.0  # the promise: every running gateway within 2 s
RELOAD_DEADLINE = 10.0


cli = cli_stdout


def kid_of(token: str) -> str:
    import jwt

    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def login(base_url: str) -> str:
    response = httpx.post(
        f"{base_url}/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def todos_status(postgrest: PostgREST, token: str) -> int:
    return http_get(f"{postgrest.url}/todos", {"Authorization": f"Bearer {token}"}).status


def test_rotation_keeps_old_tokens_working_and_pruning_ends_them_in_gateway_and_postgrest(
    tmp_path: Path, todos_database: TodosDatabase, start_postgrest: StartPostgREST
) -> None:
    role = todos_database.authenticated_role
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
        "GATEWAY_KEYS_DIR": str(tmp_path / "keys"),
        "GATEWAY_ALLOWED_ROLES": role,
        "GATEWAY_AUTHENTICATED_ROLE": role,
        "GATEWAY_POSTGREST_NOTIFY_URL": todos_database.admin_url,
        "GATEWAY_COOKIE_SECURE": "false",
    }
    org = json.loads(cli(env, tmp_path, "orgs", "create", "Acme", "--json"))["organization_id"]
    cli(
        env,
        tmp_path,
        "users",
        "create",
        "ada@example.com",
        "--password-stdin",
        "--org",
        str(org),
        "--json",
        stdin=PASSWORD,
    )
    cli(env, tmp_path, "keys", "init")

    with run_gateway(env, cwd=tmp_path) as gateway:
        postgrest = start_postgrest(tmp_path / "keys" / "jwks.json")
        before = login(gateway)
        assert todos_status(postgrest, before) == 200

        cli(env, tmp_path, "keys", "rotate", "--force")

        waited = wait_for(
            lambda: kid_of(login(gateway)) != kid_of(before),
            ROTATION_DEADLINE,
            "the running gateway signing with the new key",
        )
        after = login(gateway)
        assert kid_of(after) != kid_of(before)
        assert (
            httpx.get(
                f"{gateway}/auth/me", headers={"Authorization": f"Bearer {before}"}
            ).status_code
            == 200
        )
        assert todos_status(postgrest, before) == 200
        wait_for(
            lambda: todos_status(postgrest, after) == 200,
            RELOAD_DEADLINE,
            "PostgREST accepting the new key's token",
        )
        served = httpx.get(f"{gateway}/.well-known/jwks.json").json()
        on_disk = json.loads((tmp_path / "keys" / "jwks.json").read_text())
        assert served == on_disk

        cli(env, tmp_path, "keys", "prune", "--force")

        wait_for(
            lambda: (
                httpx.get(
                    f"{gateway}/auth/me", headers={"Authorization": f"Bearer {before}"}
                ).status_code
                == 401
            ),
            ROTATION_DEADLINE,
            "the gateway refusing the pruned key's token",
        )
        wait_for(
            lambda: todos_status(postgrest, before) == 401,
            RELOAD_DEADLINE,
            "PostgREST refusing the pruned key's token",
        )
        assert todos_status(postgrest, after) == 200
    print(f"rotation seen by the running gateway after {waited:.2f} s")
