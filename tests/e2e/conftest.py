"""Fixtures for tests against the real PostgREST: roles, a table, and a server per test.

Roles are cluster-wide, so their names carry a random suffix per test run; parallel runs against
the same PostgreSQL server never share or drop each other's roles.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from click.testing import CliRunner, Result

from gateway.cli import cli
from tests.conftest import settings_from
from tests.support.in_process import SyncGatewayClient
from tests.support.postgres import fresh_database
from tests.support.postgrest import PostgREST, postgrest_binary, run_postgrest

StartPostgREST = Callable[[Path], PostgREST]


@dataclass(frozen=True)
class TodosDatabase:
    admin_url: str
    """The test database as the superuser, e.g. for ``NOTIFY pgrst``."""
    authenticator_url: str
    """What PostgREST connects with: a LOGIN NOINHERIT role that may only switch roles."""
    anon_role: str
    """Requests without a token run as this role; it has no grant on ``todos``."""
    authenticated_role: str
    """May read ``todos``; tokens name it in their ``role`` claim."""


def execute(url: str, sql: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture(scope="session")
def postgrest_bin() -> Path:
    """Resolved once per session, before the per-test fixture clears the GATEWAY_* variables."""
    return postgrest_binary()


@pytest.fixture(scope="session")
def todos_database(postgres_url: str) -> Iterator[TodosDatabase]:
    """PostgREST's usual role setup and a ``todos`` table that only authenticated users can read.

    Depending on ``postgres_url`` makes this teardown run before the database is dropped.
    """
    suffix = secrets.token_hex(4)
    anon, authenticated, authenticator = (
        f"{name}_{suffix}" for name in ("anon", "authenticated", "authenticator")
    )
    password = secrets.token_hex(16)
    execute(
        postgres_url,
        f"""
        CREATE ROLE "{anon}" NOLOGIN;
        CREATE ROLE "{authenticated}" NOLOGIN;
        CREATE ROLE "{authenticator}" LOGIN NOINHERIT PASSWORD '{password}';
        GRANT "{anon}", "{authenticated}" TO "{authenticator}";
        CREATE TABLE public.todos (id int PRIMARY KEY, task text);
        INSERT INTO public.todos VALUES (1, 'rotate the signing key'), (2, 'publish the JWKS');
        GRANT USAGE ON SCHEMA public TO "{anon}", "{authenticated}";
        GRANT SELECT ON public.todos TO "{authenticated}";
        """,
    )
    try:
        yield TodosDatabase(
            admin_url=postgres_url,
            authenticator_url=with_credentials(postgres_url, authenticator, password),
            anon_role=anon,
            authenticated_role=authenticated,
        )
    finally:
        roles = f'"{anon}", "{authenticated}", "{authenticator}"'
        execute(postgres_url, f"DROP OWNED BY {roles}; DROP ROLE {roles};")


@pytest.fixture
def start_postgrest(todos_database: TodosDatabase, postgrest_bin: Path) -> Iterator[StartPostgREST]:
    """Start PostgREST verifying tokens with the JWKS in the given file; stopped after the test."""
    with ExitStack() as stack:

        def start(jwks_file: Path) -> PostgREST:
            return stack.enter_context(
                run_postgrest(
                    db_uri=todos_database.authenticator_url,
                    jwt_secret=f"@{jwks_file.resolve()}",
                    anon_role=todos_database.anon_role,
                    binary=postgrest_bin,
                )
            )

        yield start


# --- a bootstrapped database with the example and accounts, shared per test module ---------

PASSWORD = "correct horse battery"


def sql(url: str, statement: str, *args: Any) -> Any:
    async def run() -> Any:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            return await connection.fetch(statement, *args)
        finally:
            await connection.close()

    return asyncio.run(run())


@dataclass
class Served:
    """A bootstrapped database with the example, accounts, and the env to reach it."""

    url: str
    env: dict[str, str]
    authenticator_url: str
    anon: str
    authenticated: str
    authenticator: str
    acme: int
    globex: int
    keys_dir: Path


def gateway(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, env=env)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.stderr or result.output
    return result.stdout


@pytest.fixture(scope="module")
def served(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    suffix = secrets.token_hex(4)
    anon, authenticated, authenticator = (f"{n}_{suffix}" for n in ("anon", "member", "auth"))
    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    keys_dir = tmp_path_factory.mktemp("keys")
    password = secrets.token_hex(12)
    with fresh_database(admin_url, f"gw_served_{suffix}") as url:
        env = {
            "GATEWAY_DATABASE_URL": url.replace("postgresql://", "postgresql+asyncpg://"),
            "GATEWAY_KEYS_DIR": str(keys_dir),
            "GATEWAY_ALLOWED_ROLES": authenticated,
            "GATEWAY_AUTHENTICATED_ROLE": authenticated,
            "GATEWAY_ANON_ROLE": anon,
            "GATEWAY_AUTHENTICATOR_ROLE": authenticator,
            "GATEWAY_COOKIE_SECURE": "false",
        }
        try:
            ok(gateway(env, "db", "upgrade"))
            ok(gateway(env, "keys", "init"))
            ok(
                gateway(
                    env,
                    "postgrest",
                    "bootstrap",
                    "--example",
                    "--authenticator-password-stdin",
                    stdin=password + "\n",
                )
            )
            acme = json.loads(ok(gateway(env, "orgs", "create", "Acme", "--json")))
            globex = json.loads(ok(gateway(env, "orgs", "create", "Globex", "--json")))
            for email, org, role in [
                ("ada@example.com", acme, "org_admin"),
                ("carl@example.com", acme, "org_client"),
                ("eve@example.com", globex, "org_admin"),
            ]:
                ok(
                    gateway(
                        env,
                        "users",
                        "create",
                        email,
                        "--password-stdin",
                        "--org",
                        str(org["organization_id"]),
                        "--org-role",
                        role,
                        stdin=PASSWORD,
                    )
                )
            # What PostgREST hands to SQL, so tests can see exactly what the proxy forwarded.
            sql(
                url,
                "CREATE FUNCTION public.echo_request() RETURNS json LANGUAGE sql STABLE AS "
                "$$ SELECT json_build_object("
                "'headers', current_setting('request.headers', true)::json, "
                "'cookies', current_setting('request.cookies', true)::json, "
                "'claims', current_setting('request.jwt.claims', true)::json) $$",
            )
            sql(
                url,
                f'GRANT EXECUTE ON FUNCTION public.echo_request() TO "{anon}", "{authenticated}"',
            )
            # For embedding (a foreign key) and for a large streamed answer.
            sql(
                url,
                "CREATE TABLE public.project_notes (id serial PRIMARY KEY, "
                "project_id bigint NOT NULL REFERENCES public.projects(id), body text)",
            )
            sql(url, f'GRANT SELECT ON public.project_notes TO "{authenticated}"')
            sql(
                url,
                "CREATE FUNCTION public.big_text(mebibytes int) RETURNS text "
                "LANGUAGE sql STABLE AS $$ SELECT repeat('x', mebibytes * 1048576) $$",
            )
            sql(url, f'GRANT EXECUTE ON FUNCTION public.big_text(int) TO "{authenticated}"')
            sql(
                url,
                "INSERT INTO public.projects (organization_id, name) VALUES "
                "($1, 'acme one'), ($1, 'acme two'), ($2, 'globex secret')",
                acme["organization_id"],
                globex["organization_id"],
            )
            sql(
                url,
                "INSERT INTO public.project_notes (project_id, body) "
                "SELECT id, 'note on ' || name FROM public.projects",
            )
            authenticator_url = url.replace(
                "postgresql://postgres@", f"postgresql://{authenticator}:{password}@"
            )
            yield Served(
                url,
                env,
                authenticator_url,
                anon,
                authenticated,
                authenticator,
                acme["organization_id"],
                globex["organization_id"],
                keys_dir,
            )
        finally:
            sql(admin_url, f'DROP DATABASE IF EXISTS "gw_served_{suffix}" WITH (FORCE)')
            for role in (anon, authenticated, authenticator):
                sql(admin_url, f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def postgrest(served: Served, postgrest_bin: Path) -> Iterator[PostgREST]:
    with run_postgrest(
        db_uri=served.authenticator_url,
        jwt_secret=f"@{served.keys_dir / 'jwks.json'}",
        anon_role=served.anon,
        binary=postgrest_bin,
    ) as server:
        yield server


def token_for(served: Served, email: str) -> str:
    with SyncGatewayClient(settings_from(served.env)) as client:
        response = client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
