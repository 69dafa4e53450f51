"""Run ``gateway serve`` as a real process for tests that need the real server."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.cli import cli_command, cli_environment
from tests.support.postgres import free_port

START_TIMEOUT = 45.0


class GatewayDidNotStart(Exception):
    pass


@contextmanager
def run_gateway(env: dict[str, str], cwd: Path) -> Iterator[str]:
    """Start ``python -m gateway serve`` on a free port; yield its base URL; stop it after."""
    with gateway_process(env, cwd) as (base_url, _):
        yield base_url


@contextmanager
def gateway_process(
    env: dict[str, str], cwd: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """As :func:`run_gateway`, and the ``gateway serve`` process too (its workers are its
    children)."""
    port = free_port()
    log_path = cwd / f"gateway-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            cli_command("serve"),
            cwd=cwd,
            env=cli_environment({**env, "GATEWAY_PORT": str(port)}),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, process, log_path)
        yield base_url, process
    finally:
        stop(process)


def wait_until_healthy(base_url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise GatewayDidNotStart(
                f"gateway serve exited with {process.returncode}:\n{log_path.read_text()[-2000:]}"
            )
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise GatewayDidNotStart(
        f"gateway serve did not answer in time:\n{log_path.read_text()[-2000:]}"
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
