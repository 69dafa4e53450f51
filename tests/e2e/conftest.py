"""Fixtures for tests against the real PostgREST: roles, a table, and a server per test.

Roles are cluster-wide, so their names carry a random suffix per test run; parallel runs against
the same PostgreSQL server never share or drop each other's roles.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

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
