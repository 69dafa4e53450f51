"""The metrics' pure parts: route groups, sign-in outcomes, the token check, the JSON lines."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import subprocess
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import RequestCounter, fresh_multiprocess_dir, metrics, scrape
from gateway.settings import SettingsError, load_settings
from gateway.web.log_format import FIELDS, JsonFormatter, current_request_id
from gateway.web.metrics import token_matches
from gateway.web.observed import auth_event, route_group
from gateway.web.request_log import RequestLog

PREFIXES = ("/rest", "/rest/v1")


@pytest.mark.parametrize(
    ("path", "group"),
    [
        ("/rest", "rest"),
        ("/rest/projects", "rest"),
        ("/rest/v1/projects", "rest"),
        ("/restless", "other"),
        ("/auth/login", "auth"),
        ("/auth/v1/token", "auth"),
        ("/admin/users", "auth"),
        ("/authority", "other"),
        ("/storage/v1/object/x", "storage"),
        ("/healthz", "health"),
        ("/readyz", "health"),
        ("/metrics", "other"),
        ("/anything/at/all/4711", "other"),
    ],
)
def test_route_groups_are_a_bounded_set(path: str, group: str) -> None:
    assert route_group(path, PREFIXES) == group


@pytest.mark.parametrize(
    ("action", "status", "code", "event"),
    [
        ("sign_in", 200, None, "sign_in_succeeded"),
        ("sign_in", 401, "invalid_credentials", "sign_in_failed"),
        # GoTrue's 400 for the same refusal: the code decides, not the status.
        ("sign_in", 400, "invalid_credentials", "sign_in_failed"),
        ("sign_in", 403, "user_suspended", "sign_in_failed"),
        ("sign_in", 429, "too_many_attempts", "locked_out"),
        # The per-address rate limit, a malformed body: not a sign-in's outcome.
        ("sign_in", 429, None, None),
        ("sign_in", 400, "invalid_request", None),
        ("refresh", 401, "refresh_token_reused", "refresh_reused"),
        ("refresh", 401, "invalid_refresh_token", None),
        ("refresh", 200, None, None),
        # No handler noted a sign-in or a refresh (any other route, a refused grant_type).
        (None, 200, None, None),
        (None, 401, "invalid_credentials", None),
        ("made-up", 401, "invalid_credentials", None),
    ],
)
def test_sign_in_and_refresh_outcomes_come_from_the_noted_action_and_the_code(
    action: str | None, status: int, code: str | None, event: str | None
) -> None:
    assert auth_event(action, status, code) == event


TOKEN = "t" * 40


@pytest.mark.parametrize(
    ("header", "accepted"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Basic {TOKEN}", False),
        (TOKEN, False),
        ("Bearer", False),
        ("", False),
        (None, False),
    ],
)
def test_the_metrics_token_is_a_bearer_token(header: str | None, accepted: bool) -> None:
    assert token_matches(TOKEN, header) is accepted


def test_metrics_settings_are_validated_without_repeating_the_token() -> None:
    short = "s3cr3t-but-short"
    with pytest.raises(SettingsError) as raised:
        load_settings(metrics_token=short)
    assert "GATEWAY_METRICS_TOKEN" in str(raised.value)
    assert short not in str(raised.value)
    with pytest.raises(SettingsError, match="GATEWAY_METRICS_TOKEN"):
        load_settings(metrics_token="a b" * 20)
    with pytest.raises(SettingsError, match="GATEWAY_METRICS_PORT"):
        load_settings(metrics_port=70000)
    with pytest.raises(SettingsError, match="GATEWAY_METRICS_PORT must differ"):
        load_settings(metrics_port=8000, port=8000)
    with pytest.raises(SettingsError, match="GATEWAY_METRICS_HOST"):
        load_settings(metrics_host="0.0.0.0/8")
    with pytest.raises(SettingsError, match="GATEWAY_LOG_FORMAT"):
        load_settings(log_format="xml")
    settings = load_settings(metrics_token=TOKEN, metrics_port=9100, log_format="JSON")
    assert settings.log_format == "json"
    assert settings.metrics_host == "127.0.0.1"
    assert TOKEN not in repr(settings)


def test_a_json_line_is_one_object_with_the_request_id_of_its_context() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord(
        "gateway.x", logging.WARNING, __file__, 1, "two\nlines %s", ("a",), None
    )
    outside = json.loads(formatter.format(record))
    assert outside["message"] == "two\nlines a"
    assert outside["level"] == "warning"
    assert outside["logger"] == "gateway.x"
    assert "request_id" not in outside
    context = current_request_id.set("trace-7")
    try:
        setattr(record, FIELDS, {"status": 200})
        line = formatter.format(record)
    finally:
        current_request_id.reset(context)
    assert "\n" not in line
    inside = json.loads(line)
    assert inside["request_id"] == "trace-7"
    assert inside["status"] == 200
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("g", logging.ERROR, __file__, 1, "x", (), sys.exc_info())
    assert "ValueError: boom" in json.loads(formatter.format(failed))["exception"]


def test_the_multiprocess_directory_is_private_and_empty() -> None:
    directory = fresh_multiprocess_dir()
    try:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert not any(directory.iterdir())
    finally:
        directory.rmdir()


def test_made_up_methods_share_one_label_value() -> None:
    counter = RequestCounter(metrics())
    before = _value("gateway_requests_total", group="other", method="other", status="405")
    for method in ("BREW", "PROPFIND", "X" * 100):
        counter.record("other", method, 405, 0.001)
    after = _value("gateway_requests_total", group="other", method="other", status="405")
    assert after - before == 3
    assert len(counter._children) == 1


def test_statuses_share_a_bounded_set_of_label_values() -> None:
    counter = RequestCounter(metrics())
    labels = {"group": "rest", "method": "GET"}
    before = {
        status: _value("gateway_requests_total", **labels, status=status)
        for status in ("200", "2xx", "5xx", "1xx", "other", "0")
    }
    for status in (200, 299, 250, 599, 555, 150, 999, 600, 0):
        counter.record("rest", "GET", status, 0.001)
    moved = {
        status: _value("gateway_requests_total", **labels, status=status) - before[status]
        for status in before
    }
    assert moved == {"200": 1, "2xx": 2, "5xx": 2, "1xx": 1, "other": 2, "0": 1}
    assert _value("gateway_requests_total", **labels, status="299") == 0
    assert len(counter._children) == len(moved)


def test_the_request_log_counts_every_answer_by_group() -> None:
    scope: MutableMapping[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/storage/v1/object/x",
        "raw_path": b"/storage/v1/object/x",
        "headers": [],
    }

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Any) -> None:
        return None

    async def receive() -> Any:
        return {"type": "http.request"}

    labels = {"group": "storage", "method": "GET", "status": "4xx"}
    before = _value("gateway_requests_total", **labels)
    asyncio.run(RequestLog(app, proxy_prefixes=PREFIXES)(scope, receive, send))
    assert _value("gateway_requests_total", **labels) - before == 1


def _value(name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(scrape().decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_a_dead_workers_gauges_leave_the_scrape_and_its_counters_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = (
        "from gateway.metrics import metrics\n"
        "every = metrics()\n"
        "every.feed_read()\n"
        "every.sign_ins.labels('succeeded').inc(3)\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", worker], env=env, check=True)  # it has exited
    assert any(name.startswith("gauge_livemin_") for name in os.listdir(tmp_path))

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    families = {
        sample.name: sample.value
        for family in text_string_to_metric_families(scrape().decode())
        for sample in family.samples
    }
    assert not any(name.startswith("gauge_livemin_") for name in os.listdir(tmp_path))
    assert "gateway_revocation_feed_lag_seconds" not in families
    assert families["gateway_sign_ins_total"] == 3
