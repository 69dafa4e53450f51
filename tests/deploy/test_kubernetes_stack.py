"""The manifests run: the migrate Job's script, PostgREST and a gateway replica, as configured.

No cluster runs here, so each container's process runs on this machine with the environment its
manifest gives it (Secrets as their placeholders), changed only where this machine differs from
a cluster: the database's address, free ports on 127.0.0.1, role names of this run (roles are
cluster-wide) and no Redis. Then a user signs in, reads through the gateway and, with the same
token, from PostgREST directly (its JWKS comes from the database); after a logout PostgREST
itself refuses that token (auth.check_session as its db-pre-request).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import sqlalchemy_url
from tests.e2e.conftest import execute
from tests.support.cli import cli_command, cli_environment
from tests.support.manifests import (
    container,
    effective_env,
    migrate_script,
    resource_documents,
    the,
)
from tests.support.postgres import free_port, fresh_database, postgres_admin_url
from tests.support.postgrest import http_get, log_tail, postgrest_binary, stop
from tests.support.server import run_gateway
from tests.support.waiting import wait_for

pytestmark = pytest.mark.postgres

PASSWORD = "correct horse battery"
READY_DEADLINE = 30.0


@dataclass(frozen=True)
class Database:
    url: str
    """asyncpg-style, as the superuser."""
    suffix: str

    @property
    def roles(self) -> dict[str, str]:
        return {
            name: f"{name}_{self.suffix}" for name in ("anon", "authenticated", "authenticator")
        }


@pytest.fixture
def database() -> Iterator[Database]:
    suffix = secrets.token_hex(4)
    with postgres_admin_url() as admin_url:
        try:
            with fresh_database(admin_url, f"gateway_k8s_{suffix}") as url:
                yield Database(url=url, suffix=suffix)
        finally:
            roles = ", ".join(
                f'"{name}_{suffix}"' for name in ("anon", "authenticated", "authenticator")
            )
            execute(admin_url, f"DROP ROLE IF EXISTS {roles};")


def gateway_env(kind: str, name: str, item: str, database: Database) -> dict[str, str]:
    """The container's GATEWAY_* (and other) variables, pointed at this machine."""
    env = effective_env(resource_documents(), container(the(kind, name), item))
    env.pop("GATEWAY_REDIS_URL", None)  # no Redis here: each process counts on its own
    roles = database.roles
    env.update(
        {
            "GATEWAY_DATABASE_URL": sqlalchemy_url(database.url),
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_ANON_ROLE": roles["anon"],
            "GATEWAY_AUTHENTICATED_ROLE": roles["authenticated"],
            "GATEWAY_ALLOWED_ROLES": roles["authenticated"],
            "GATEWAY_AUTHENTICATOR_ROLE": roles["authenticator"],
        }
    )
    return env


def run_job(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        ["sh", "-c", migrate_script()],
        env=cli_environment({**env, "PATH": path}),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@dataclass(frozen=True)
class RunningPostgREST:
    url: str
    admin_url: str


def postgrest_env(database: Database, port: int, admin_port: int) -> dict[str, str]:
    env = effective_env(
        resource_documents(), container(the("Deployment", "postgrest"), "postgrest")
    )
    manifest_uri = urlsplit(env["PGRST_DB_URI"])
    local = urlsplit(database.url)
    netloc = (
        f"{database.roles['authenticator']}:{manifest_uri.password}@{local.hostname}:{local.port}"
    )
    env.update(
        {
            "PGRST_DB_URI": urlunsplit(manifest_uri._replace(netloc=netloc, path=local.path)),
            "PGRST_DB_ANON_ROLE": database.roles["anon"],
            "PGRST_SERVER_HOST": "127.0.0.1",
            "PGRST_SERVER_PORT": str(port),
            "PGRST_ADMIN_SERVER_PORT": str(admin_port),
        }
    )
    return env


def start_postgrest(
    database: Database, log_path: Path
) -> tuple[RunningPostgREST, subprocess.Popen[bytes]]:
    port, admin_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGRST_")}
    env.update(postgrest_env(database, port, admin_port))
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(postgrest_binary())],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = RunningPostgREST(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}")

    def ready() -> bool:
        assert process.poll() is None, log_tail(log_path)
        try:
            return http_get(f"{server.admin_url}/ready", timeout=1).status == 200
        except OSError:
            return False

    try:
        wait_for(ready, READY_DEADLINE, "PostgREST ready", step=0.1)
    except BaseException:
        stop(process)
        raise
    return server, process


def test_the_job_postgrest_and_a_replica_run_as_the_manifests_configure_them(
    database: Database, tmp_path: Path
) -> None:
    job_env = gateway_env("Job", "gateway-migrate", "migrate", database)
    first, again = run_job(job_env, tmp_path), run_job(job_env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert again.returncode == 0, again.stderr  # idempotent: an upgrade runs it again
    assert "JWKS published as pgrst.jwt_secret" in first.stdout
    assert "auth.check_session() as db-pre-request" in first.stdout

    authenticated = database.roles["authenticated"]
    execute(
        database.url,
        f"CREATE TABLE public.notes (id int); INSERT INTO public.notes VALUES (1);"
        f' GRANT SELECT ON public.notes TO "{authenticated}";',
    )
    rest, process = start_postgrest(database, tmp_path / "postgrest.log")
    try:
        metrics_port = free_port()
        env = gateway_env("Deployment", "gateway", "gateway", database)
        env.update(
            {
                "GATEWAY_UPSTREAM_URL": rest.url,
                "GATEWAY_METRICS_HOST": "127.0.0.1",
                "GATEWAY_METRICS_PORT": str(metrics_port),
            }
        )
        cli_env = cli_environment(env)
        organization = subprocess.run(
            cli_command("orgs", "create", "Demo", "--json"),
            env=cli_env,
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
        )
        org_id = str(json.loads(organization.stdout)["organization_id"])
        subprocess.run(
            cli_command(
                "users",
                "create",
                "k8s@example.com",
                "--password-stdin",
                "--org",
                org_id,
                "--org-role",
                "org_admin",
            ),
            env=cli_env,
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
        )
        with run_gateway(env, tmp_path) as gateway:
            ready = httpx.get(f"{gateway}/readyz")
            assert ready.status_code == 200, ready.text
            login = httpx.post(
                f"{gateway}/auth/login", json={"email": "k8s@example.com", "password": PASSWORD}
            )
            assert login.status_code == 200, login.text
            bearer = {"authorization": f"Bearer {login.json()['access_token']}"}

            assert httpx.get(f"{gateway}/rest/notes", headers=bearer).json() == [{"id": 1}]
            direct = httpx.get(f"{rest.url}/notes", headers=bearer)
            assert direct.status_code == 200, direct.text
            assert direct.json() == [{"id": 1}]
            metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert metrics.status_code == 200
            assert "gateway_" in metrics.text

            assert httpx.post(f"{gateway}/auth/logout", headers=bearer, json={}).status_code == 204
            refused = httpx.get(f"{rest.url}/notes", headers=bearer)
            assert refused.status_code == 401, refused.text
            assert refused.json()["code"] == "session_revoked"
            assert httpx.get(f"{gateway}/rest/notes", headers=bearer).status_code == 401
    finally:
        stop(process)
