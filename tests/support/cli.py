"""Run the ``gateway`` command line in a process of its own, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path


def cli_command(*args: str) -> list[str]:
    """``python -m gateway ARGS`` with this test run's interpreter (the project's venv)."""
    return [sys.executable, "-m", "gateway", *args]


def cli_environment(env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any GATEWAY_* variable of its own, then ``env``:
    the command sees exactly the configuration the test gives it."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    full_env.update(env)
    return full_env


def run_cli(
    env: Mapping[str, str],
    cwd: Path | None,
    *args: str,
    stdin: str | None = None,
    timeout: float = 60,
    before_exec: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``gateway ARGS`` to its end; the caller judges the exit code and the output.

    ``cwd`` None runs it in this process's folder (a test's tmp_path); ``before_exec`` runs in
    the child before the command starts (a resource limit, say).
    """
    return subprocess.run(
        cli_command(*args),
        cwd=cwd,
        env=cli_environment(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        preexec_fn=before_exec,
    )


def cli_stdout(
    env: Mapping[str, str], cwd: Path | None, *args: str, stdin: str | None = None
) -> str:
    """Run ``gateway ARGS``; assert it succeeded; return what it printed."""
    result = run_cli(env, cwd, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout
