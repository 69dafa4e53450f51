"""Key rotations while gateways serve: under login and proxy load, and across two processes."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.faults.conftest import PASSWORD, Served, kid_of, login, wait_for
from tests.support.cli import run_cli
from tests.support.postgrest import PostgREST, http_get
from tests.support.server import run_gateway

CLIENTS = 8
LOAD_SECONDS = 6.0  # at least; the load goes on until a login has seen the rotated key
LOAD_LIMIT_SECONDS = 60.0  # however slow the machine, the load stops here
ROTATE_AFTER = 1.5
ROTATION_DEADLINE = 2.0  # every running gateway signs with the new key within 2 s
CLIENT_TIMEOUT = 15.0


@pytest.fixture
def rotation_env(served: Served) -> dict[str, str]:
    return {
        **served.env,
        "GATEWAY_AUTH_RATE_LIMIT": "100000",
        # The served database is the one PostgREST reads its config notifications from.
        "GATEWAY_POSTGREST_NOTIFY_URL": served.url,
    }


@pytest.fixture
def proxy(rotation_env: dict[str, str], postgrest: PostgREST, tmp_path: Path) -> Iterator[str]:
    env = {**rotation_env, "GATEWAY_UPSTREAM_URL": postgrest.url}
    with run_gateway(env, cwd=tmp_path) as base:
        yield base


def test_a_key_rotation_under_login_and_proxy_load_fails_no_request(
    proxy: str, postgrest: PostgREST, rotation_env: dict[str, str], tmp_path: Path
) -> None:
    before = login(proxy)["access_token"]
    old_kid = kid_of(before)
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    kids_seen: set[str] = set()
    lock = threading.Lock()
    started = time.monotonic()
    rotation_done = threading.Event()

    def load_goes_on() -> bool:
        # On a loaded machine the rotation command alone can outlast LOAD_SECONDS: the load
        # runs on until a login after the rotation has signed with the new key.
        elapsed = time.monotonic() - started
        if elapsed >= LOAD_LIMIT_SECONDS:
            return False
        with lock:
            saw_both = rotation_done.is_set() and len(kids_seen) > 1
        return elapsed < LOAD_SECONDS or not saw_both

    def record(kind: str, response: httpx.Response, expected: int = 200) -> None:
        with lock:
            outcomes[kind] += 1
            if response.status_code != expected:
                failures.append(f"{kind}: {response.status_code} {response.text[:200]}")

    def client_loop(index: int) -> None:
        email = ("ada@example.com", "carl@example.com", "eve@example.com")[index % 3]
        with httpx.Client(base_url=proxy, timeout=CLIENT_TIMEOUT) as client:
            while load_goes_on():
                answer = client.post("/auth/login", json={"email": email, "password": PASSWORD})
                record("login", answer)
                if answer.status_code != 200:
                    continue
                token = answer.json()["access_token"]
                with lock:
                    kids_seen.add(kid_of(token))
                for bearer in (token, before):
                    auth = {"Authorization": f"Bearer {bearer}"}
                    record("proxy read", client.get("/rest/projects", headers=auth))
                    # PostgREST itself, without the gateway: it must know the signing key.
                    direct = http_get(f"{postgrest.url}/projects", auth, timeout=CLIENT_TIMEOUT)
                    with lock:
                        outcomes["direct read"] += 1
                        if direct.status != 200:
                            failures.append(f"direct read: {direct.status} {direct.body[:200]!r}")

    with ThreadPoolExecutor(CLIENTS) as pool:
        load = [pool.submit(client_loop, index) for index in range(CLIENTS)]
        time.sleep(ROTATE_AFTER)
        rotated = run_cli(rotation_env, tmp_path, "keys", "rotate", "--force")
        rotation_done.set()
        for future in load:
            future.result(timeout=LOAD_LIMIT_SECONDS + 2 * CLIENT_TIMEOUT)

    assert rotated.returncode == 0, rotated.stderr
    assert "warning" not in rotated.stderr.lower(), rotated.stderr  # PostgREST was notified
    assert failures == [], failures[:10]
    assert outcomes["login"] > CLIENTS, outcomes
    # The load saw the old key and, after the rotation, the new one.
    new_kid = kid_of(login(proxy)["access_token"])
    assert new_kid != old_kid
    assert kids_seen == {old_kid, new_kid}
    # After its reload, PostgREST accepts the new key's tokens and the old key's (retiring).
    for token in (before, login(proxy)["access_token"]):
        wait_for(
            lambda token=token: (  # type: ignore[misc]
                http_get(f"{postgrest.url}/projects", {"Authorization": f"Bearer {token}"}).status
                == 200
            ),
            10.0,
            "PostgREST accepting the token",
        )


def test_two_gateway_processes_sign_with_the_new_key_within_2_s_of_a_rotation(
    rotation_env: dict[str, str], tmp_path: Path
) -> None:
    with (
        run_gateway(rotation_env, cwd=tmp_path) as first,
        run_gateway(rotation_env, cwd=tmp_path) as second,
    ):
        old = {kid_of(login(base)["access_token"]) for base in (first, second)}
        assert len(old) == 1

        rotated = run_cli(rotation_env, tmp_path, "keys", "rotate", "--force")
        assert rotated.returncode == 0, rotated.stderr
        finished = time.monotonic()

        for base in (first, second):
            wait_for(
                lambda base=base: kid_of(login(base)["access_token"]) not in old,  # type: ignore[misc]
                ROTATION_DEADLINE - (time.monotonic() - finished),
                f"the gateway at {base} signing with the new key",
            )
        new = {kid_of(login(base)["access_token"]) for base in (first, second)}

    assert len(new) == 1
    assert new != old
