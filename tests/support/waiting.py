"""Waiting for something another process does, with a deadline and no fixed sleep to tune."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    condition: Callable[[], bool], deadline: float, what: str, *, step: float = 0.02
) -> float:
    """Poll ``condition`` until it holds; return the seconds it took, or fail after ``deadline``."""
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        if condition():
            return time.monotonic() - started
        time.sleep(step)
    raise AssertionError(f"{what} did not happen within {deadline} s")
