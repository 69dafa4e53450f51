"""Shared fixtures of the fault tests: the e2e database, PostgREST, and small helpers.

The module-scoped ``served`` database (roles, the ``projects`` example, accounts ada, carl and
eve) and the real PostgREST come from the e2e fixtures; they are re-exported here so that pytest
finds them for the tests of this folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import (  # noqa: F401 - fixtures, found by pytest through this module
    PASSWORD,
    Served,
    postgrest,
    postgrest_bin,
    served,
)
from tests.support.waiting import wait_for

__all__ = ["PASSWORD", "Served", "cli_process", "kid_of", "login", "wait_for"]


def cli_process(
    env: dict[str, str],
    cwd: Path,
    *args: str,
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``python -m gateway ARGS`` in a process of its own, with only ``env``'s GATEWAY_* set."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def kid_of(token: str) -> str:
    import jwt

    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def login(base: str, email: str = "ada@example.com", timeout: float = 10) -> dict[str, Any]:
    response = httpx.post(
        f"{base}/auth/login", json={"email": email, "password": PASSWORD}, timeout=timeout
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer
