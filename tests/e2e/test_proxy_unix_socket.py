"""PostgREST on a Unix socket (``server-unix-socket``) behind a real gateway process:
``GATEWAY_UPSTREAM_URL=unix:///path``. The proxy, /readyz and ``gateway doctor`` reach it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Served
from tests.e2e.test_database_side import doctor, failing
from tests.e2e.test_proxy import bearer, sign_in
from tests.support.postgrest import PostgREST, run_postgrest
from tests.support.server import run_gateway


@pytest.fixture
def unix_postgrest(served: Served, postgrest_bin: Path) -> Iterator[tuple[PostgREST, str]]:
    # A short folder: a socket path is limited to about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="pgrst-", dir="/tmp") as folder:
        socket_path = f"{folder}/postgrest.sock"
        with run_postgrest(
            db_uri=served.authenticator_url,
            jwt_secret=f"@{served.keys_dir / 'jwks.json'}",
            anon_role=served.anon,
            binary=postgrest_bin,
            extra_config={"server-unix-socket": socket_path},
        ) as server:
            yield server, f"unix://{socket_path}"


def test_the_proxy_reaches_postgrest_on_a_unix_socket(
    served: Served, unix_postgrest: tuple[PostgREST, str], tmp_path: Path
) -> None:
    _, url = unix_postgrest
    env = {**served.env, "GATEWAY_UPSTREAM_URL": url, "GATEWAY_AUTH_RATE_LIMIT": "100000"}
    with run_gateway(env, cwd=tmp_path) as base:
        token = bearer(sign_in(base))

        rows = [httpx.get(f"{base}/rest/projects?select=name&order=id", headers=token)]
        rows += [httpx.get(f"{base}/rest/projects?select=name&order=id", headers=token)]
        ready = httpx.get(f"{base}/readyz")
        echoed = httpx.get(f"{base}/rest/rpc/echo_request", headers=token)

    assert [r.status_code for r in rows] == [200, 200]
    assert rows[0].json() == [{"name": "acme one"}, {"name": "acme two"}]
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["upstream"] == "ok"
    # PostgREST is told the host it is reached by: there is none but the socket.
    assert echoed.json()["headers"]["host"] == "localhost"


def test_readyz_says_unreachable_when_the_socket_is_gone(served: Served, tmp_path: Path) -> None:
    env = {**served.env, "GATEWAY_UPSTREAM_URL": f"unix://{tmp_path}/none.sock"}
    with run_gateway(env, cwd=tmp_path) as base:
        ready = httpx.get(f"{base}/readyz")
        proxied = httpx.get(f"{base}/rest/projects")

    assert ready.status_code == 503
    assert ready.json()["checks"]["upstream"] == "unreachable"
    assert proxied.status_code == 502
    assert proxied.json()["code"] == "upstream_unavailable"


def test_doctor_checks_postgrest_on_a_unix_socket(
    served: Served, unix_postgrest: tuple[PostgREST, str]
) -> None:
    _, url = unix_postgrest

    code, report = doctor(served, url)

    assert failing(report) == {}
    assert code == 0
    postgrest = next(c for c in report["checks"] if c["name"] == "postgrest")
    assert url in postgrest["detail"]
