"""PostgREST killed with SIGKILL under load and restarted on the same port, behind one gateway."""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx

from tests.faults.conftest import Served, login
from tests.support.postgres import free_port
from tests.support.postgrest import PostgREST, run_postgrest
from tests.support.server import run_gateway

REQUESTS = 200
CLIENTS = 8
PACING = 0.02  # seconds between two requests of one client: the load spans the outage
CLIENT_TIMEOUT = 10.0  # no request may take longer: a hang fails the test
TEST_DEADLINE = 60.0
RECOVERY_DEADLINE = 10.0
OUTAGE_STATUSES = {502, 503, 504}


def start_postgrest(stack: ExitStack, served: Served, binary: Path, port: int) -> PostgREST:
    return stack.enter_context(
        run_postgrest(
            db_uri=served.authenticator_url,
            jwt_secret=f"@{served.keys_dir / 'jwks.json'}",
            anon_role=served.anon,
            binary=binary,
            server_port=port,
        )
    )


def test_postgrest_killed_and_restarted_under_load_gives_502_then_recovers_without_hanging(
    served: Served, postgrest_bin: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    port = free_port()
    with ExitStack() as stack:
        first = start_postgrest(stack, served, postgrest_bin, port)
        env = {
            **served.env,
            "GATEWAY_UPSTREAM_URL": first.url,
            "GATEWAY_UPSTREAM_CONNECT_TIMEOUT": "2",
            "GATEWAY_UPSTREAM_READ_TIMEOUT": "5",
            "GATEWAY_AUTH_RATE_LIMIT": "100000",
        }
        base = stack.enter_context(run_gateway(env, cwd=tmp_path))
        headers = {"Authorization": f"Bearer {login(base)['access_token']}"}
        client = stack.enter_context(httpx.Client(base_url=base, timeout=CLIENT_TIMEOUT))
        outcomes: list[tuple[float, int | str]] = []
        lock = threading.Lock()

        def one_request(_: int) -> None:
            try:
                status: int | str = client.get("/rest/projects", headers=headers).status_code
            except httpx.HTTPError as exc:  # a timeout or a dropped connection: never allowed
                status = type(exc).__name__
            with lock:
                outcomes.append((time.monotonic(), status))
            time.sleep(PACING)

        def done() -> int:
            with lock:
                return len(outcomes)

        with ThreadPoolExecutor(CLIENTS) as pool:
            load = pool.map(one_request, range(REQUESTS))
            while done() < REQUESTS // 5:
                time.sleep(0.01)
            first.process.send_signal(signal.SIGKILL)
            first.process.wait(timeout=5)
            killed_at = time.monotonic()
            time.sleep(0.3)  # the outage: some requests must meet a dead PostgREST
            second = start_postgrest(stack, served, postgrest_bin, port)
            restarted_at = time.monotonic()
            list(load)  # re-raises nothing: one_request catches every client error

        assert second.url == first.url
        statuses = [status for _, status in outcomes]
        assert len(statuses) == REQUESTS
        assert set(statuses) <= {200} | OUTAGE_STATUSES, sorted(set(map(str, statuses)))
        during = [status for at, status in outcomes if killed_at < at < restarted_at]
        assert any(status in OUTAGE_STATUSES for status in during), (
            "the load did not meet the outage"
        )

        # Without restarting the gateway, PostgREST answers again through it.
        deadline = time.monotonic() + RECOVERY_DEADLINE
        while client.get("/rest/projects", headers=headers).status_code != 200:
            assert time.monotonic() < deadline, "the gateway did not recover after the restart"
            time.sleep(0.1)
        after = [client.get("/rest/projects", headers=headers) for _ in range(20)]
        assert [response.status_code for response in after] == [200] * 20
        assert sorted(row["name"] for row in after[-1].json()) == ["acme one", "acme two"]
    assert time.monotonic() - started < TEST_DEADLINE
