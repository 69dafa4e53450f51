"""Child processes of the dev stack: each in its own process group, stopped group and all."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from gateway.devstack.errors import DevStackError

STOP_GRACE = 10.0
READY_TIMEOUT = 60.0
POLL_STEP = 0.1
_PR_SET_PDEATHSIG = 1


def start_child(
    argv: list[str], *, env: Mapping[str, str], cwd: Path, output: IO[bytes] | None
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new session, so a Ctrl-C at the terminal reaches only ``gateway
    dev``, which then stops the children in order (the gateway before the PostgREST it uses)."""
    return subprocess.Popen(  # noqa: S603  (our own argv: the binary and its config file)
        argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
        start_new_session=True,
        preexec_fn=_stop_when_orphaned(os.getpid()),
    )


def _stop_when_orphaned(parent: int) -> Callable[[], None]:
    """In the child, before exec: SIGTERM when ``gateway dev`` dies, even by SIGKILL (Linux).

    A signal handler cannot run on SIGKILL, and the children are in their own sessions, so
    without this a killed ``gateway dev`` would leave PostgREST and the gateway running.
    """

    def arrange() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)  # the parent died before the request took effect

    return arrange


def stop_child(process: subprocess.Popen[bytes], grace: float = STOP_GRACE) -> None:
    """SIGTERM to the child's whole group (the server's workers too), SIGKILL after ``grace``."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()
    # Workers that outlived their parent are still in the group: make sure none is left.
    _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    # ProcessLookupError: the group is empty, nothing is left to stop.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def wait_until_ready(
    url: str, process: subprocess.Popen[bytes], name: str, log: Path | None
) -> None:
    """Poll ``url`` until it answers 200; fail with the end of ``log`` if the child exits."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DevStackError(
                f"{name} exited with code {process.returncode} while starting" + _tail(log)
            )
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310  (http://127.0.0.1)
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass  # not listening, or not ready yet
        time.sleep(POLL_STEP)
    raise DevStackError(f"{name} was not ready after {READY_TIMEOUT:g} s" + _tail(log))


def _tail(log: Path | None) -> str:
    if log is None or not log.exists():
        return "."
    lines = log.read_text(errors="replace").strip().splitlines()[-10:]
    return ":\n" + "\n".join(lines) if lines else "."
