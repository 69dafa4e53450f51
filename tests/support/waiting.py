"""Waiting for something another process does, with a deadline and no fixed sleep to tune."""

from __future__ import annotations

import asyncio
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


async def wait_for_async(
    condition: Callable[[], bool], deadline: float, *, step: float = 0.05
) -> bool:
    """Poll ``condition`` from a coroutine until it holds or ``deadline`` seconds have passed;
    return whether it held (the caller asserts, and so says what did not happen)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline
    while loop.time() < until:
        if condition():
            return True
        await asyncio.sleep(step)
    return condition()
