"""The gateway's PostgreSQL store stopped and started again under a running gateway.

The store is a throwaway cluster of its own, so that it can be stopped. For proxying during the
outage, PostgREST serves the e2e database on the other server (the tests' usual one), with the
same keystore as the gateway: the store goes away, the database behind PostgREST does not.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest

from tests.faults.conftest import PASSWORD, Served
from tests.support.cli import run_cli
from tests.support.postgres import PostgresMissing, find_server_binaries, throwaway_cluster
from tests.support.postgrest import PostgREST
from tests.support.server import run_gateway

RECOVERY_DEADLINE = 20.0
CLIENT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Cluster:
    """A running throwaway cluster, with what ``pg_ctl`` needs to stop and start it again."""

    url: str
    data: Path
    port: int
    socket_dir: str

    def pg_ctl(self, *args: str) -> None:
        binaries = find_server_binaries()
        assert binaries is not None
        # As in tests.support.postgres: the cluster belongs to the postgres account under root.
        run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*run_as, str(binaries / "pg_ctl"), "-D", str(self.data), "-w", *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def stop(self) -> None:
        self.pg_ctl("-m", "fast", "stop")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.pg_ctl("-l", str(self.data.parent / "log"), "-o", options, "start")


def describe(url: str) -> tuple[Path, str]:
    async def read() -> tuple[Path, str]:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            data = await connection.fetchval("SHOW data_directory")
            sockets = await connection.fetchval("SHOW unix_socket_directories")
        finally:
            await connection.close()
        return Path(data), str(sockets).split(",")[0].strip()

    return asyncio.run(read())


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    try:
        with throwaway_cluster() as url:
            data, socket_dir = describe(url)
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            yield Cluster(url, data, port, socket_dir)
    except PostgresMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def login(base: str) -> httpx.Response:
    return httpx.post(
        f"{base}/auth/login",
        json={"email": "ada@example.com", "password": PASSWORD},
        timeout=CLIENT_TIMEOUT,
    )


def test_postgres_stopped_gives_503_store_unavailable_and_login_recovers_when_it_returns(
    cluster: Cluster, tmp_path: Path
) -> None:
    env = {
        "GATEWAY_DATABASE_URL": cluster.url.replace("postgresql://", "postgresql+asyncpg://"),
        "GATEWAY_KEYS_DIR": str(tmp_path / "keys"),
        "GATEWAY_COOKIE_SECURE": "false",
    }
    for args, stdin in [
        (("db", "upgrade"), None),
        (("users", "create", "ada@example.com", "--password-stdin"), PASSWORD),
    ]:
        done = run_cli(env, tmp_path, *args, stdin=stdin)
        assert done.returncode == 0, done.stderr

    with run_gateway(env, cwd=tmp_path) as base:
        assert login(base).status_code == 200
        # No PostgREST runs here, so /readyz is 503 for the upstream; the store must be ok.
        assert httpx.get(f"{base}/readyz").json()["checks"]["store"] == "ok"

        cluster.stop()
        try:
            refused = login(base)
            not_ready = httpx.get(f"{base}/readyz", timeout=CLIENT_TIMEOUT)
        finally:
            cluster.start()

        deadline = time.monotonic() + RECOVERY_DEADLINE
        while (recovered := login(base)).status_code != 200:
            assert time.monotonic() < deadline, f"login did not recover: {recovered.text}"
            time.sleep(0.2)
        ready = httpx.get(f"{base}/readyz", timeout=CLIENT_TIMEOUT)

    assert not_ready.status_code == 503, not_ready.text
    assert not_ready.json()["code"] == "store_unavailable"
    assert not_ready.json()["checks"]["store"] == "unreachable"
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "store_unavailable"
    assert ready.json()["checks"]["store"] == "ok", ready.text


def test_postgres_stopped_proxying_with_still_valid_tokens_keeps_working(
    cluster: Cluster, served: Served, postgrest: PostgREST, tmp_path: Path
) -> None:
    """Tokens are verified without the store, and the revocation set keeps its last known state
    (nobody can revoke anything while the store is down), so requests with tokens issued before
    the outage still reach PostgREST; only sign-in waits for the store."""
    env = {
        **served.env,
        "GATEWAY_DATABASE_URL": cluster.url.replace("postgresql://", "postgresql+asyncpg://"),
        "GATEWAY_UPSTREAM_URL": postgrest.url,
    }
    assert run_cli(env, tmp_path, "db", "upgrade").returncode == 0
    created = run_cli(
        env, tmp_path, "users", "create", "ada@example.com", "--password-stdin", stdin=PASSWORD
    )
    assert created.returncode == 0, created.stderr

    with run_gateway(env, cwd=tmp_path) as base:
        signed_in = login(base)
        assert signed_in.status_code == 200, signed_in.text
        token = signed_in.json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{base}/rest/rpc/echo_request"
        before = httpx.get(url, headers=headers, timeout=CLIENT_TIMEOUT)

        cluster.stop()
        try:
            refused = login(base)
            # Long enough for the revocation listener to lose its connection and fall back.
            during = []
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                during.append(httpx.get(url, headers=headers, timeout=CLIENT_TIMEOUT))
                time.sleep(0.2)
        finally:
            cluster.start()

    assert before.status_code == 200, before.text
    assert refused.status_code == 503, refused.text
    assert refused.json()["code"] == "store_unavailable"
    assert len(during) >= 5
    assert [r.status_code for r in during] == [200] * len(during), during[-1].text
    # PostgREST saw the token's own claims: it was this token that went through.
    sent = jwt.decode(token, options={"verify_signature": False})
    assert [r.json()["claims"]["jti"] for r in during] == [sent["jti"]] * len(during)
