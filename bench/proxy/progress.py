"""How a benchmark run talks to whoever started it: progress lines, and the failure that ends it."""

from __future__ import annotations

import sys


class BenchFailed(Exception):
    pass


def step(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
