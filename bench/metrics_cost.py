"""The CPU the metrics add to one proxied request: a timeit of exactly the calls it makes.

    uv run python bench/metrics_cost.py [--number 200000]

A proxied request (a cached token, one PostgREST answer) makes these metric calls: the request
log's counter child and duration histogram (``RequestCounter.record``), the token cache's hit
counter, the mount's upstream histogram, and the request id's context variable set and reset.
Each is timed in prometheus_client's in-memory mode (one process) and in its multiprocess mode
(``gateway serve``: values in memory-mapped files), in separate interpreters since the mode is
chosen per process. No server runs; it takes a few seconds of one core.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def measure(number: int) -> float:
    """Microseconds of metric work per proxied request, in this process's mode."""
    from gateway.metrics import RequestCounter, metrics
    from gateway.web.log_format import current_request_id

    every = metrics()
    counter = RequestCounter(every)
    hits = every.token_cache.labels("hit")
    upstream = every.upstream_duration

    def one_request() -> None:
        context = current_request_id.set("0123456789abcdef01234567")
        hits.inc()
        upstream.observe(0.0012)
        counter.record("rest", "GET", 200, 0.0018)
        current_request_id.reset(context)

    one_request()  # the label children are made once, outside the timing
    best = min(timeit.repeat(one_request, number=number, repeat=5))
    return best / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--in-this-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_this_process:
        print(f"{measure(args.number):.2f}")
        return
    with tempfile.TemporaryDirectory() as directory:
        for mode, extra in (
            ("in-memory (one process)", {}),
            ("multiprocess (gateway serve)", {"PROMETHEUS_MULTIPROC_DIR": directory}),
        ):
            environment = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
            result = subprocess.run(  # noqa: S603 - this script, with its own arguments
                [sys.executable, __file__, "--in-this-process", "--number", str(args.number)],
                env={**environment, **extra},
                check=True,
                capture_output=True,
                text=True,
            )
            print(f"{mode}: {result.stdout.strip()} µs of CPU per proxied request")


if __name__ == "__main__":
    main()
