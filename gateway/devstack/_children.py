"""Child processes of the dev stack: each in its own process group, stopped group and all."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO

STOP_GRACE = 10.0


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
    )


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
