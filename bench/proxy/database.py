"""The benchmark's throwaway database: roles, schema, keys, one account and 100 rows."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.proxy.progress import BenchFailed, step
from tests.support.postgres import fresh_database, postgres_admin_url

PASSWORD = "correct horse battery"  # noqa: S105 - a throwaway account in a throwaway database
EMAIL = "bench@example.com"
ROWS = 100


@dataclass(frozen=True)
class Database:
    url: str
    """As the admin (postgres) connects to it."""
    authenticator_url: str
    """As PostgREST connects to it."""
    env: dict[str, str]
    """The gateway settings every gateway and CLI call of the benchmark gets."""
    keys_dir: Path
    anon_role: str
    organization_id: int
    row_id: int
    """The id of a row in the middle of the 100: the single-row GET asks for it."""
    postgres_version: str
    workdir: Path


def gateway_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """``gateway ARGS`` in this process (one import, not one per command); returns stdout.

    ``prepared_database`` has removed the caller's GATEWAY_* variables and moved into a folder
    without a ``.env``, so exactly ``env`` is in effect.
    """
    from click.testing import CliRunner

    from gateway.cli import cli

    result = CliRunner().invoke(cli, list(args), input=stdin, env=env)
    if result.exit_code != 0:
        raise BenchFailed(f"gateway {' '.join(args)} failed:\n{result.stderr or result.output}")
    return result.stdout


def fetch(url: str, statement: str, *args: Any) -> list[Any]:
    async def run() -> list[Any]:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            return list(await connection.fetch(statement, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


def drop_roles(admin_url: str, roles: Sequence[str]) -> None:
    for role in roles:
        try:
            fetch(admin_url, f'DROP ROLE IF EXISTS "{role}"')
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"bench: could not drop role {role}: {exc}", file=sys.stderr)


def leave_the_callers_settings(stack: ExitStack, workdir: Path) -> None:
    """The CLI runs in this process: none of the caller's settings (GATEWAY_* variables, a .env
    in the working folder) may join the benchmark's. GATEWAY_TEST_* are the test helpers' own."""
    for name in [n for n in os.environ if n.startswith("GATEWAY_")]:
        if not name.startswith("GATEWAY_TEST_"):
            del os.environ[name]
    stack.callback(os.chdir, Path.cwd())
    os.chdir(workdir)


def load_example(env: dict[str, str], url: str, authenticator_password: str) -> tuple[int, int]:
    """Schema, keys, the PostgREST example, an organization, its admin and its rows; returns
    (organization id, the id of the row in the middle)."""
    step("bootstrapping the database (db upgrade, keys init, postgrest bootstrap --example)")
    gateway_cli(env, "db", "upgrade")
    gateway_cli(env, "keys", "init")
    gateway_cli(
        env,
        *("postgrest", "bootstrap", "--example", "--authenticator-password-stdin"),
        stdin=authenticator_password + "\n",
    )
    org = json.loads(gateway_cli(env, "orgs", "create", "Bench", "--json"))
    org_id = int(org["organization_id"])
    gateway_cli(
        env,
        *("users", "create", EMAIL, "--password-stdin", "--org", str(org_id)),
        *("--org-role", "org_admin"),
        stdin=PASSWORD + "\n",
    )
    rows = fetch(
        url,
        "INSERT INTO public.projects (organization_id, name) "
        "SELECT $1, 'project ' || n FROM generate_series(1, $2) AS n RETURNING id",
        org_id,
        ROWS,
    )
    return org_id, int(rows[ROWS // 2]["id"])


def prepared_database(stack: ExitStack) -> Database:
    """A fresh database with three fresh roles, and a work folder; ``stack`` removes them."""
    suffix = secrets.token_hex(4)
    anon, member, authenticator = (f"bench_{n}_{suffix}" for n in ("anon", "member", "auth"))
    admin_url = stack.enter_context(postgres_admin_url())
    # Registered before the database: roles can only go once the database that uses them has.
    stack.callback(drop_roles, admin_url, (anon, member, authenticator))
    url = stack.enter_context(fresh_database(admin_url, f"gw_bench_{suffix}"))
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-bench-")))
    leave_the_callers_settings(stack, workdir)
    keys_dir = workdir / "keys"
    authenticator_password = secrets.token_hex(16)
    env = {
        "GATEWAY_DATABASE_URL": url.replace("postgresql://", "postgresql+asyncpg://", 1),
        "GATEWAY_KEYS_DIR": str(keys_dir),
        "GATEWAY_ANON_ROLE": anon,
        "GATEWAY_AUTHENTICATOR_ROLE": authenticator,
        "GATEWAY_ALLOWED_ROLES": member,
        "GATEWAY_AUTHENTICATED_ROLE": member,
        "GATEWAY_COOKIE_SECURE": "false",
        "GATEWAY_ACCESS_TOKEN_TTL": "86400",
    }
    org_id, row_id = load_example(env, url, authenticator_password)
    postgres_version = str(fetch(url, "SHOW server_version")[0][0])
    authenticator_url = url.replace(
        "postgresql://postgres@", f"postgresql://{authenticator}:{authenticator_password}@", 1
    )
    if authenticator_url == url:
        raise BenchFailed(f"expected an admin URL of the form postgresql://postgres@…, got {url}")
    return Database(
        url=url,
        authenticator_url=authenticator_url,
        env=env,
        keys_dir=keys_dir,
        anon_role=anon,
        organization_id=org_id,
        row_id=row_id,
        postgres_version=postgres_version,
        workdir=workdir,
    )
