"""``gateway serve``'s metrics settings refused in one line, before anything is served."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.postgres import free_port


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
