"""The command line of ``python -m bench.proxy``: its options, its exit codes, Ctrl-C."""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from bench.logins import LoginFailed
from bench.nginx import NginxDidNotStart
from bench.proxy.benchmark import benchmark
from bench.proxy.progress import BenchFailed
from bench.proxy.report import publish
from bench.proxy.targets import UPSTREAMS
from tests.support.postgres import PostgresMissing
from tests.support.postgrest import PostgRESTMissing
from tests.support.server import GatewayDidNotStart

COUNTS = ("duration", "warmup", "rounds", "connections", "threads", "login_clients",
          "storm_logins", "storm_connections", "workers")  # fmt: skip
"""The options that must be at least 1."""
QUICK_DEFAULTS = (("duration", 6, 3), ("rounds", 3, 2), ("warmup", 3, 1), ("patience", 20.0, 1.0))
"""(option, full run default, --quick default)."""


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """How long and how hard wrk loads each target, and how quiet the machine must be first."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="under 3 minutes: the headline table only (the single-row GET at --connections "
        "and on one connection, direct, gateway, nginx, both upstreams; 2 rounds of 3 s); "
        "writes nothing",
    )
    parser.add_argument("--duration", type=int, help="seconds per wrk run (6; quick 3)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--rounds", type=int, help="rounds per target (3; quick 2)")
    parser.add_argument("--warmup", type=int, help="warm-up seconds per target (3; quick 1)")
    parser.add_argument(
        "--quiet",
        type=int,
        default=25,
        metavar="PERCENT",
        help="before each run, wait until the machine is at most this busy (25)",
    )
    parser.add_argument(
        "--patience",
        type=float,
        metavar="SECONDS",
        help="but no longer than this (20; quick 1)",
    )


def add_other_options(parser: argparse.ArgumentParser) -> None:
    """What is measured besides the proxied load, and what is written."""
    parser.add_argument(
        "--upstreams",
        default=",".join(UPSTREAMS),
        help=f"comma-separated, of {', '.join(UPSTREAMS)} (default: all)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="SECONDS",
        help="also profile the gateway with py-spy for this long (default: no profile)",
    )
    parser.add_argument("--py-spy", help="the py-spy executable (default: PATH, /tmp/pyspy/bin)")
    parser.add_argument(
        "--flame",
        metavar="SVG",
        help="write a py-spy flame graph of the gateway under the single-row load to this file "
        "(e.g. docs/flame-after.svg; --profile SECONDS long, default 15) instead of the profile",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="GATEWAY_WORKERS of the measured gateways (1)",
    )
    parser.add_argument(
        "--compare-workers",
        type=int,
        default=2,
        metavar="N",
        help="the full run also measures the single-row GET through 1 and N workers (2; 1: no)",
    )
    parser.add_argument(
        "--unix-socket",
        action="store_true",
        help="add an upstream: PostgREST on a Unix socket (server-unix-socket), the gateway at "
        "GATEWAY_UPSTREAM_URL=unix://…, nginx at unix:…",
    )
    parser.add_argument(
        "--no-nginx", action="store_true", help="leave nginx out even when it is installed"
    )
    parser.add_argument(
        "--login-clients", type=int, default=8, help="concurrent clients signing in (8)"
    )
    parser.add_argument(
        "--storm-logins", type=int, default=50, help="clients signing in during the storm (50)"
    )
    parser.add_argument(
        "--storm-connections",
        type=int,
        default=8,
        help="wrk connections of the GET measured beside the storm (8)",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print the report only; leave docs/benchmarks.md"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.proxy",
        description="PostgREST direct against PostgREST through the gateway's /rest mount.",
    )
    add_load_options(parser)
    add_other_options(parser)
    args = parser.parse_args(argv)
    for name, full, quick in QUICK_DEFAULTS:
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.flame:
        # The run moves into its own work folder: the path is the caller's.
        args.flame = str(Path(args.flame).resolve())
    unknown = set(args.upstreams.split(",")) - set(UPSTREAMS)
    if unknown:
        parser.error(f"unknown upstream {', '.join(sorted(unknown))}")
    small = [f"--{name.replace('_', '-')}" for name in COUNTS if getattr(args, name) < 1]
    if small:
        parser.error(f"{', '.join(small)} must be ≥ 1")
    return args


def terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print("bench: wrk is not installed; install it with: apt-get install wrk", file=sys.stderr)
        return 2
    # Ctrl-C and SIGTERM unwind the stack, so everything started is stopped and removed (also
    # when the shell started this in the background, with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, terminate)
    try:
        outcome = benchmark(args, wrk)
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started was stopped and removed", file=sys.stderr)
        return 130
    except (
        BenchFailed,
        LoginFailed,
        PostgresMissing,
        PostgRESTMissing,
        GatewayDidNotStart,
        NginxDidNotStart,
    ) as exc:
        print(f"bench: failed (everything it started was stopped and removed): {exc}")
        return 1
    publish(outcome, write=not args.no_write)
    return 0
