"""GET /metrics and the JSON log lines, through real `gateway serve` processes and PostgREST.

Every scrape is parsed with prometheus_client's own parser; the counters are read before and
after the traffic, so the module's other requests do not matter.
"""

from __future__ import annotations

import json
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import PASSWORD, Served
from tests.e2e.test_workers import CONNECTIONS, WORKERS, wait_for_workers
from tests.support.postgres import free_port
from tests.support.postgrest import PostgREST
from tests.support.server import gateway_process, run_gateway
from tests.support.waiting import wait_for

TOKEN = secrets.token_urlsafe(32)
DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "gateway.json"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape by (name, sorted labels); the text must parse."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def scrape(base: str, token: str = TOKEN) -> Samples:
    response = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def login(base: str, email: str, password: str = PASSWORD) -> httpx.Response:
    return httpx.post(f"{base}/auth/login", json={"email": email, "password": password})


@pytest.fixture
def metrics_env(served: Served, postgrest: PostgREST) -> dict[str, str]:
    return {
        **served.env,
        "GATEWAY_UPSTREAM_URL": postgrest.url,
        "GATEWAY_AUTH_RATE_LIMIT": "100000",
        "GATEWAY_METRICS_TOKEN": TOKEN,
        "GATEWAY_LOGIN_MAX_FAILURES": "2",
        "GATEWAY_REFRESH_REUSE_GRACE": "0",
    }


@pytest.fixture
def gateway_with_metrics(metrics_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with run_gateway(metrics_env, cwd=tmp_path) as base:
        yield base


def test_the_counters_move_with_sign_ins_refreshes_and_proxied_requests(
    gateway_with_metrics: str,
) -> None:
    base = gateway_with_metrics
    before = scrape(base)

    first = login(base, "ada@example.com")
    assert first.status_code == 200, first.text
    assert login(base, "ada@example.com").status_code == 200
    assert login(base, "carl@example.com", "wrong password").status_code == 401
    # GATEWAY_LOGIN_MAX_FAILURES=2: eve's third attempt in the window is refused unheard.
    assert login(base, "eve@example.com", "wrong").status_code == 401
    assert login(base, "eve@example.com", "wrong").status_code == 401
    locked = login(base, "eve@example.com")
    assert locked.status_code == 429, locked.text
    assert locked.json()["code"] == "too_many_attempts"
    # A refresh token used twice (no grace): the reuse is detected.
    old = first.json()["refresh_token"]
    assert httpx.post(f"{base}/auth/refresh", json={"refresh_token": old}).status_code == 200
    reused = httpx.post(f"{base}/auth/refresh", json={"refresh_token": old})
    assert reused.json()["code"] == "refresh_token_reused", reused.text
    # One proxied request with a fresh token (a cache miss), then the same token (a hit).
    bearer = {"Authorization": f"Bearer {login(base, 'carl@example.com').json()['access_token']}"}
    for _ in range(2):
        assert httpx.get(f"{base}/rest/projects", headers=bearer).status_code == 200

    after = scrape(base)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("gateway_sign_ins_total", outcome="succeeded") == 3
    assert moved("gateway_sign_ins_total", outcome="failed") == 3
    assert moved("gateway_sign_ins_total", outcome="locked_out") == 1
    assert moved("gateway_refresh_token_reuse_detected_total") == 1
    assert moved("gateway_token_cache_lookups_total", result="miss") >= 1
    assert moved("gateway_token_cache_lookups_total", result="hit") >= 1
    assert moved("gateway_requests_total", group="rest", method="GET", status="200") == 2
    assert moved("gateway_requests_total", group="auth", method="POST", status="200") == 4
    assert moved("gateway_requests_total", group="auth", method="POST", status="429") == 1
    assert moved("gateway_upstream_duration_seconds_count") == 2
    assert moved("gateway_request_duration_seconds_count", group="rest") == 2
    # The scrape before this one was counted, under the bounded "other" group.
    assert moved("gateway_requests_total", group="other", method="GET", status="200") == 1
    assert value(after, "gateway_revocation_feed_lag_seconds") >= 0
    assert ("gateway_revocation_feed_lag_seconds", ()) in after
    assert ("gateway_signing_key_age_seconds", ()) in after
    assert ("gateway_key_rotation_age_seconds", ()) in after
    assert not any("path" in dict(labels) for _, labels in after)

    # The dashboard queries only what a real scrape has: it cannot drift from the code.
    queried = dashboard_metrics()
    assert queried, "the dashboard queries no gateway metric"
    names = {name for name, _ in after}
    assert queried <= names, f"the dashboard queries unknown metrics: {queried - names}"


def dashboard_metrics() -> set[str]:
    document = json.loads(DASHBOARD.read_text())
    assert any(
        variable.get("type") == "datasource" and variable.get("query") == "prometheus"
        for variable in document["templating"]["list"]
    ), "the dashboard has no Prometheus datasource variable"
    expressions = [
        target["expr"] for panel in document["panels"] for target in panel.get("targets", [])
    ] + [variable.get("definition", "") for variable in document["templating"]["list"]]
    return {name for expr in expressions for name in re.findall(r"\bgateway_[a-z_]+", expr)}


def test_the_metrics_token_guards_the_main_listener(gateway_with_metrics: str) -> None:
    url = f"{gateway_with_metrics}/metrics"
    refused = [
        httpx.get(url),
        httpx.get(url, headers={"Authorization": f"Bearer {TOKEN[:-1]}x"}),
        httpx.get(url, headers={"Authorization": f"Basic {TOKEN}"}),
        httpx.get(url, headers={"Authorization": "Bearer"}),
    ]
    for answer in refused:
        assert answer.status_code == 401
        assert answer.json()["code"] == "unauthorized"
        assert TOKEN not in answer.text
    # The same answer whatever was wrong: no hint.
    assert len({answer.text for answer in refused}) == 1
    assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_neither_setting_means_no_metrics(served: Served, tmp_path: Path) -> None:
    with run_gateway(served.env, cwd=tmp_path) as base:
        answer = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        unknown = httpx.get(f"{base}/no-such-path")
    assert answer.status_code == 404
    assert answer.json() == unknown.json() == {"code": "not_found", "message": "Not Found."}


def test_the_metrics_port_serves_them_without_a_token_and_the_main_listener_does_not(
    served: Served, tmp_path: Path
) -> None:
    port = free_port()
    env = {**served.env, "GATEWAY_METRICS_PORT": str(port)}
    with run_gateway(env, cwd=tmp_path) as base:
        assert httpx.get(f"{base}/healthz").status_code == 200
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert scraped.status_code == 200
        samples = parse(scraped.text)
        assert value(samples, "gateway_requests_total", group="health", method="GET", status="200")
        assert httpx.get(f"http://127.0.0.1:{port}/other").status_code == 404
        main = httpx.get(f"{base}/metrics")
        assert main.status_code == 404
        assert main.json()["code"] == "not_found"


def test_a_scrape_sums_every_worker(metrics_env: dict[str, str], tmp_path: Path) -> None:
    env = {**metrics_env, "GATEWAY_WORKERS": str(WORKERS)}
    with gateway_process(env, tmp_path) as (base, serve):
        workers = wait_for_workers(serve)
        before = scrape(base)
        for _ in range(CONNECTIONS):
            with httpx.Client(timeout=10) as fresh:  # a fresh connection: either worker
                assert fresh.get(f"{base}/readyz").status_code == 200
        after = scrape(base)
        # Each worker maps its value files from one private directory.
        directories = {value_file.parent for pid in workers for value_file in mapped_dbs(pid)}
        assert len(directories) == 1, directories
        (directory,) = directories
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert {pid for pid in workers if mapped_dbs(pid)} == set(workers)
    assert not directory.exists(), "gateway serve left its metrics directory behind"
    counted = value(
        after, "gateway_requests_total", group="health", method="GET", status="200"
    ) - value(before, "gateway_requests_total", group="health", method="GET", status="200")
    # One worker's count alone is less, unless all CONNECTIONS landed on it (2^-23).
    assert counted == CONNECTIONS


def mapped_dbs(pid: int) -> set[Path]:
    """The prometheus_client value files a process has mapped (its multiprocess mode)."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {Path(line.split()[-1]) for line in maps if line.endswith(".db")}


def json_lines(log: Path) -> list[dict[str, Any]]:
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_json_logs_carry_the_request_id_and_no_secret(
    metrics_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**metrics_env, "GATEWAY_LOG_FORMAT": "json"}
    with gateway_process(env, tmp_path) as (base, _):
        signed_in = login(base, "ada@example.com")
        assert signed_in.status_code == 200
        tokens = signed_in.json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert httpx.get(f"{base}/rest/projects", headers=bearer).status_code == 200
        # A token in the query string is refused, and the query string is never logged.
        query = f"?select=id&access_token={tokens['access_token']}"
        assert httpx.get(f"{base}/rest/projects{query}").status_code == 400
        refreshed = httpx.post(
            f"{base}/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 200
        asked = httpx.get(f"{base}/rest/projects", headers={**bearer, "X-Request-Id": "trace-42"})
        assert asked.headers["x-request-id"] == "trace-42"
        log = tmp_path / f"gateway-{base.rsplit(':', 1)[1]}.log"
        wait_for(lambda: "trace-42" in log.read_text(), 10, "the access line of trace-42")

    text = log.read_text()
    lines = json_lines(log)
    for secret in (
        PASSWORD,
        TOKEN,
        tokens["access_token"],
        tokens["refresh_token"],
        refreshed.json()["access_token"],
        refreshed.json()["refresh_token"],
    ):
        assert secret not in text
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line)
    access = [line for line in lines if line["logger"] == "gateway.request"]
    traced = [line for line in access if line.get("request_id") == "trace-42"]
    assert len(traced) == 1
    assert traced[0] | {"duration_ms": 0} == traced[0] | {
        "method": "GET",
        "group": "rest",
        "path": "/rest/projects",
        "status": 200,
        "duration_ms": 0,
    }
    assert all("request_id" in line for line in access)


def test_lines_logged_while_handling_a_request_carry_its_id(tmp_path: Path) -> None:
    # PostgREST unreachable: the mount logs a warning while handling the request.
    env = {
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
        "GATEWAY_KEYS_DIR": str(tmp_path / "keys"),
        "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{free_port()}",
        "GATEWAY_LOG_FORMAT": "json",
    }
    with gateway_process(env, tmp_path) as (base, _):
        answer = httpx.get(f"{base}/rest/projects", headers={"X-Request-Id": "trace-502"})
        assert answer.status_code == 502
        log = tmp_path / f"gateway-{base.rsplit(':', 1)[1]}.log"
        wait_for(lambda: log.read_text().count("trace-502") >= 2, 10, "both lines of trace-502")
    lines = [line for line in json_lines(log) if line.get("request_id") == "trace-502"]
    assert {line["logger"] for line in lines} == {"gateway.proxy", "gateway.request"}
    assert any(line["message"].startswith("upstream failed") for line in lines)
