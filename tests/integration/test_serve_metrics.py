"""``gateway serve``'s metrics: its settings refused in one line, before anything is served;
the GATEWAY_METRICS_PORT listener's limits, failures, forks and Host check."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.metrics import MetricsListener
from gateway.metrics.listener import MAX_WAITING, TIMEOUT, host_allowed
from tests.support.cli import run_cli
from tests.support.postgres import free_port
from tests.support.waiting import wait_for


def test_a_short_metrics_token_is_refused_without_being_repeated(tmp_path: Path) -> None:
    token = "only-twenty-chars-ok"
    result = run_cli({"GATEWAY_METRICS_TOKEN": token}, tmp_path, "serve")

    assert result.returncode == 1
    assert result.stderr.startswith("gateway: error: invalid setting GATEWAY_METRICS_TOKEN")
    assert token not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_a_metrics_port_in_use_stops_serve_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            {"GATEWAY_METRICS_PORT": str(port), "GATEWAY_PORT": str(free_port())}, tmp_path, "serve"
        )

    assert result.returncode == 1
    assert f"cannot listen on GATEWAY_METRICS_HOST:GATEWAY_METRICS_PORT (127.0.0.1:{port})" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


@pytest.fixture
def listener() -> Iterator[MetricsListener]:
    served = MetricsListener("127.0.0.1", 0)
    served.start()
    yield served
    served.stop()


def test_slow_connections_are_bounded_and_cut_at_their_deadline(
    listener: MetricsListener,
) -> None:
    baseline = threading.active_count()
    slow = [socket.create_connection(("127.0.0.1", listener.port)) for _ in range(MAX_WAITING + 72)]
    closed: set[int] = set()

    def count_closed() -> int:
        for index, connection in enumerate(slow):
            if index in closed:
                continue
            connection.setblocking(False)
            try:
                if connection.recv(1) == b"":
                    closed.add(index)
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed.add(index)
        return len(closed)

    try:
        for connection in slow:
            connection.sendall(b"G")  # and nothing more
        # Beyond the cap, the oldest are closed at once; those waiting hold no thread.
        wait_for(lambda: count_closed() >= len(slow) - MAX_WAITING, 10, "the oldest closed")
        assert threading.active_count() <= baseline
        # A scrape still answers while they wait.
        scraped = httpx.get(f"http://127.0.0.1:{listener.port}/metrics", timeout=10)
        assert scraped.status_code == 200
        assert "gateway_requests_total" in scraped.text
        assert count_closed() < len(slow)
        # The others are cut at their deadline.
        wait_for(lambda: count_closed() == len(slow), TIMEOUT + 10, "the slow ones closed")
    finally:
        for connection in slow:
            connection.close()
    wait_for(lambda: threading.active_count() <= baseline, 10, "no thread left")


def test_a_failing_scrape_is_logged_and_answered_as_json(
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    def broken() -> list[object]:
        raise RuntimeError("the keystore exploded")

    served = MetricsListener("127.0.0.1", 0, broken)  # type: ignore[arg-type]
    served.start()
    try:
        with caplog.at_level(logging.ERROR, logger="gateway.metrics"):
            answer = httpx.get(f"http://127.0.0.1:{served.port}/metrics", timeout=10)
            garbage = _raw(served.port, b"GARBAGE\r\n\r\n")
    finally:
        served.stop()
    assert answer.status_code == 500
    assert answer.json() == {"code": "internal_error", "message": "The scrape failed."}
    (record,) = [r for r in caplog.records if r.name == "gateway.metrics"]
    assert record.exc_info is not None
    assert "RuntimeError" in caplog.text
    assert garbage.startswith(b"HTTP/1.0 400 ")
    assert json.loads(garbage.split(b"\r\n\r\n", 1)[1])["code"] == "bad_request"
    assert "Traceback" not in capfd.readouterr().err


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_a_forked_child_holds_no_socket_of_the_listener() -> None:
    served = MetricsListener("127.0.0.1", 0)
    served.start()
    port = served.port
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # a Granian worker, alive while the parent's listener stops
        os.close(write_end)
        os.read(read_end, 1)
        os._exit(0)
    os.close(read_end)
    try:
        served.stop()
        again = MetricsListener("127.0.0.1", port)
        again.start()  # EADDRINUSE if the child still held the listening socket
        again.stop()
    finally:
        os.close(write_end)
        os.waitpid(child, 0)


def test_a_loopback_listener_answers_only_loopback_host_names(listener: MetricsListener) -> None:
    url = f"http://127.0.0.1:{listener.port}/metrics"
    port = listener.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
        assert httpx.get(url, headers={"Host": host}).status_code == 200, host
    for host in (f"evil.example:{port}", "evil.example", f"localhost:{port + 1}", "10.0.0.1"):
        refused = httpx.get(url, headers={"Host": host})
        assert refused.status_code == 421, host
        assert refused.json()["code"] == "misdirected_request"


@pytest.mark.parametrize(
    ("header", "allowed"),
    [
        (None, True),
        ("localhost:9100", True),
        ("LOCALHOST", True),
        ("127.0.0.2:9100", True),
        ("[::1]", True),
        ("[::1]:9101", False),
        ("[::1]x", False),
        ("localhost.evil.example:9100", False),
        ("192.168.1.5:9100", False),
        ("", False),
    ],
)
def test_the_host_check_is_of_loopback_names_and_the_port(
    header: str | None, allowed: bool
) -> None:
    assert host_allowed(header, 9100) is allowed


def test_a_listener_on_every_address_answers_any_host() -> None:
    # Prometheus scrapes a pod by its IP (or a name of its own): no Host check there.
    served = MetricsListener("0.0.0.0", 0)
    served.start()
    try:
        answer = httpx.get(
            f"http://127.0.0.1:{served.port}/metrics", headers={"Host": "10.1.2.3:9100"}
        )
    finally:
        served.stop()
    assert answer.status_code == 200
