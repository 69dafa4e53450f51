"""Granian's options for the gateway, side by side: the single-row GET through each variant.

    uv run python -m bench.granian_options [--rounds 4] [--duration 4]

Each variant is the gateway's app (``gateway.web.app:create_app_from_env``) under the
``granian`` command with one worker and its own options, in front of one PostgREST with the
JWT cache (as compose.yaml runs it), in the throwaway database of bench/proxy/. Per round and
variant, wrk -c16 for --duration seconds, then one connection for 2 s; in alternating order,
medians over the rounds. The gateway's CPU per request is the number to choose by: it depends
least on what else runs on the machine. Needs what ``python -m bench.proxy`` needs; removes
everything it started. gateway/cli/serve.py holds the options chosen, and why.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack

import httpx

from bench.processes import process_tree
from bench.proxy.database import Database, prepared_database
from bench.proxy.measure import Run, Wrk, measure, run_wrk
from bench.proxy.progress import BenchFailed, step
from bench.proxy.scenarios import Scenario
from bench.proxy.targets import UPSTREAMS, Target, gateway_env, sign_in, start_postgrest
from tests.support.postgres import free_port
from tests.support.postgrest import postgrest_binary

VARIANTS: dict[str, tuple[str, ...]] = {
    "Granian defaults (ASGI: mt)": (),
    "--runtime-mode st": ("--runtime-mode", "st"),
    "--runtime-mode st --no-ws (gateway serve)": ("--runtime-mode", "st", "--no-ws"),
    "... --http 1": ("--runtime-mode", "st", "--no-ws", "--http", "1"),
    "... --backpressure 32": ("--runtime-mode", "st", "--no-ws", "--backpressure", "32"),
}


def start_variant(
    stack: ExitStack, database: Database, upstream: str, options: tuple[str, ...]
) -> Target:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env |= gateway_env(database, upstream, "warning", 1) | {"GATEWAY_PORT": str(port)}
    command = [
        sys.executable,
        *("-m", "granian", "--interface", "asgi", "--factory", "--workers", "1"),
        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"),
        *options,
        "gateway.web.app:create_app_from_env",
    ]
    log = database.workdir / f"granian-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - this interpreter running granian
            command, env=env, cwd=database.workdir, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def stop() -> None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)

    stack.callback(stop)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return Target(" ".join(options), f"{base}/rest", tuple(process_tree(process.pid)))
        except httpx.TransportError:
            time.sleep(0.1)
    raise BenchFailed(f"granian {' '.join(options)} did not start:\n{log.read_text()[-1500:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=4)
    args = parser.parse_args()
    upstream = UPSTREAMS["jwt-cache"]
    with ExitStack() as stack:
        database = prepared_database(stack)
        postgrest = start_postgrest(stack, upstream, database, postgrest_binary(), None)
        targets = {
            name: start_variant(stack, database, postgrest.url, options)
            for name, options in VARIANTS.items()
        }
        token = sign_in(next(iter(targets.values())).base.removesuffix("/rest"))
        wrk = Wrk("wrk", database.workdir, token, 1)
        path = f"/projects?id=eq.{database.row_id}"
        loaded, single = Scenario("one", "1 row", path, 16), Scenario("one-c1", "1 row", path, 1)
        for target in targets.values():
            run_wrk(wrk, target.base + path, scenario=loaded, seconds=1)
        runs: dict[str, list[tuple[Run, Run]]] = {name: [] for name in targets}
        for number in range(1, args.rounds + 1):
            for name in list(targets) if number % 2 else list(reversed(targets)):
                pair = tuple(
                    measure(wrk, upstream, scenario, targets[name], seconds=seconds,
                            round_number=number, quiet=0.25, patience=1)
                    for scenario, seconds in ((loaded, args.duration), (single, 2))
                )  # fmt: skip
                runs[name].append((pair[0], pair[1]))
                step(f"round {number}, {name}: {pair[0].cpu_us_per_request:,.0f} µs CPU/request")
    print("| Granian options | req/s, wrk -c16 | gateway CPU/request | p50, 1 connection |")
    print("| --- | ---: | ---: | ---: |")
    for name, pairs in runs.items():
        print(
            f"| {name} | {statistics.median(a.rps for a, _ in pairs):,.0f} "
            f"| {statistics.median(a.cpu_us_per_request for a, _ in pairs):,.0f} µs "
            f"| {statistics.median(b.p50_ms for _, b in pairs):.2f} ms |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
