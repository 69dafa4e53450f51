"""The whole benchmark run: every target and scenario in rounds, sign-ins, a login storm, tokens."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime

from bench import tokens as token_bench
from bench.logins import LoginStats, sign_in_for
from bench.nginx import nginx_binary
from bench.processes import process_tree
from bench.proxy.database import EMAIL, PASSWORD
from bench.proxy.machine import Machine, git_revision, machine
from bench.proxy.measure import (
    Aggregate,
    Results,
    Run,
    Wrk,
    aggregate,
    cpu_seconds,
    measure,
    ms,
    run_wrk,
    settle,
    wrk_version,
)
from bench.proxy.profile import (
    FLAME_SECONDS,
    Profile,
    find_py_spy,
    flame_graph,
    profile_if_asked,
)
from bench.proxy.progress import BenchFailed, step
from bench.proxy.scenarios import (
    Scenario,
    beside_the_storm,
    check_answers,
    healthz,
    remove_inserted,
    scenarios_for,
    settle_table,
)
from bench.proxy.targets import (
    LEVELS,
    QUICK_LEVELS,
    UNIX_SOCKET,
    UPSTREAMS,
    Options,
    Stack,
    Upstream,
    gateway_env,
    gateway_pid,
    gateway_target,
    running_stack,
)
from tests.support.server import run_gateway


@dataclass(frozen=True)
class SignIns:
    stats: LoginStats
    cpu_ms_per_login: float


@dataclass(frozen=True)
class Storm:
    scenario: Scenario
    idle: list[Run]
    storm: list[Run]
    logins: list[LoginStats]


@dataclass(frozen=True)
class Workers:
    """The single-row GET through gateways of 1 and of ``counts[-1]`` workers, in turn."""

    upstream: Upstream
    scenario: Scenario
    runs: dict[int, list[Run]]
    """Worker count → its rounds."""


@dataclass(frozen=True)
class Outcome:
    args: argparse.Namespace
    upstreams: list[Upstream]
    scenarios: list[Scenario]
    results: Results
    runs: list[Run]
    box: Machine
    profile: Profile | None
    profile_note: str
    reference: Aggregate | None
    logins: list[SignIns]
    storm: Storm | None
    token_rates: list[token_bench.TokenRates]
    workers: Workers | None
    flame: str
    """Where the flame graph went (or why there is none); empty when none was asked for."""
    with_nginx: bool
    started: datetime
    revision: str
    """The commit when the processes started (they load the code then), not when it ended."""
    minutes: float


def proxy_runs(
    args: argparse.Namespace, wrk: Wrk, stack: Stack, scenarios: Sequence[Scenario]
) -> tuple[list[Run], Results]:
    """Every upstream, scenario and target: a warm-up, then rounds in alternating order."""
    runs: list[Run] = []
    results: Results = {}
    for deployment in stack.deployments:
        upstream = deployment.upstream
        targets = deployment.targets()
        for scenario in scenarios:
            label = f"{upstream.key}, {scenario.title}"
            # Every scenario starts on the same table: 100 live rows, no dead tuples, fresh
            # statistics (docs/benchmarks.md, "The 100-row anomaly").
            settle_table(stack.database_url)
            step(f"{label}: warm-up")
            for target in targets.values():
                run_wrk(wrk, target.base + scenario.path, scenario=scenario, seconds=args.warmup)
            per_target: dict[str, list[Run]] = {name: [] for name in targets}
            for number in range(1, args.rounds + 1):
                order = list(targets) if number % 2 else list(reversed(targets))
                for name in order:
                    run = measure(
                        wrk,
                        upstream,
                        scenario,
                        targets[name],
                        seconds=args.duration,
                        round_number=number,
                        quiet=args.quiet / 100,
                        patience=args.patience,
                    )
                    step(
                        f"{label}: round {number}, {name}: {run.rps:,.0f} req/s, "
                        f"p50 {ms(run.p50_ms)} ms, p99 {ms(run.p99_ms)} ms, "
                        f"{run.cpu_us_per_request:,.0f} µs CPU/request"
                    )
                    runs.append(run)
                    per_target[name].append(run)
            if scenario.method != "GET":
                remove_inserted(stack.database_url)
            for name, target_runs in per_target.items():
                results[(upstream.key, scenario.key, name)] = aggregate(target_runs)
    return runs, results


def workers_runs(args: argparse.Namespace, wrk: Wrk, stack: Stack, scenario: Scenario) -> Workers:
    """The single-row GET through a gateway of 1 worker and one of ``--compare-workers``
    workers (both log level warning) in front of the last upstream, in alternating order."""
    deployment = stack.deployments[-1]
    upstream = deployment.upstream
    more = args.compare_workers
    step(f"workers: starting a gateway with {more} workers in front of {upstream.title}")
    with ExitStack() as extra:
        one = deployment.gateways["warning"] if args.workers == 1 else None
        if one is None:
            one = extra.enter_context(
                run_gateway(
                    gateway_env(stack.database, deployment.upstream_url, "warning", 1),
                    stack.workdir,
                )
            )
        many = extra.enter_context(
            run_gateway(
                gateway_env(stack.database, deployment.upstream_url, "warning", more),
                stack.workdir,
            )
        )
        targets = {
            1: gateway_target("gateway, 1 worker", one, path="/rest"),
            more: gateway_target(f"gateway, {more} workers", many, path="/rest"),
        }
        for target in targets.values():
            run_wrk(wrk, target.base + scenario.path, scenario=scenario, seconds=args.warmup)
        runs: dict[int, list[Run]] = {count: [] for count in targets}
        for number in range(1, args.rounds + 1):
            order = list(targets) if number % 2 else list(reversed(targets))
            for count in order:
                run = measure(
                    wrk,
                    upstream,
                    scenario,
                    targets[count],
                    seconds=args.duration,
                    round_number=number,
                    quiet=args.quiet / 100,
                    patience=args.patience,
                )
                runs[count].append(run)
                step(
                    f"workers, round {number}, {count}: {run.rps:,.0f} req/s, "
                    f"{run.cpu_us_per_request:,.0f} µs CPU/request"
                )
    return Workers(upstream, scenario, runs)


def gateway_alone(args: argparse.Namespace, wrk: Wrk, stack: Stack) -> Aggregate:
    """The floor: the gateway (warning) answering ``GET /healthz`` on its own, nothing proxied."""
    last = stack.deployments[-1]
    floor = gateway_target("gateway (warning)", last.gateways["warning"])
    step("the gateway alone: GET /healthz")
    return aggregate(
        [
            measure(
                wrk,
                last.upstream,
                healthz(args.connections),
                floor,
                seconds=args.duration,
                round_number=number,
                quiet=args.quiet / 100,
                patience=args.patience,
            )
            for number in range(1, args.rounds + 1)
        ]
    )


def sign_ins(args: argparse.Namespace, stack: Stack) -> list[SignIns]:
    """Sign-ins back to back through the gateway (warning): one client, then several."""
    base = stack.deployments[-1].gateways["warning"]
    pids = process_tree(gateway_pid(base))
    found = []
    for clients in (1, args.login_clients):
        settle(args.quiet / 100, args.patience)
        before = cpu_seconds(pids)
        stats = sign_in_for(base, EMAIL, PASSWORD, clients=clients, seconds=args.duration)
        used = cpu_seconds(pids) - before
        found.append(SignIns(stats, used / len(stats.latencies_ms) * 1000))
        step(
            f"sign-in, {clients} client(s): {stats.per_second:,.1f}/s, "
            f"p50 {ms(stats.p50_ms)} ms, p99 {ms(stats.percentile(0.99))} ms"
        )
    return found


class LoginsInBackground:
    """Clients signing in back to back on a daemon thread (Ctrl-C does not wait for it); its
    stats, or what it raised, for the main thread."""

    def __init__(self, base_url: str, *, clients: int, seconds: float) -> None:
        self.outcome: dict[str, LoginStats | BaseException] = {}
        self.thread = threading.Thread(
            target=self._sign_in, args=(base_url, clients, seconds), daemon=True
        )
        self.thread.start()

    def _sign_in(self, base_url: str, clients: int, seconds: float) -> None:
        try:
            self.outcome["stats"] = sign_in_for(
                base_url, EMAIL, PASSWORD, clients=clients, seconds=seconds
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.outcome["error"] = exc

    def stats(self, timeout: float) -> LoginStats:
        self.thread.join(timeout=timeout)
        if "error" in self.outcome:
            raise BenchFailed(f"the login storm failed: {self.outcome['error']}")
        stats = self.outcome["stats"]
        assert isinstance(stats, LoginStats)
        return stats


def login_storm(args: argparse.Namespace, wrk: Wrk, stack: Stack, one_row: str) -> Storm:
    """The single-row GET through the gateway (warning), alone and beside a login storm."""
    deployment = stack.deployments[-1]
    name = "gateway (warning)"
    target = deployment.targets()[name]
    beside_storm = dataclasses.replace(target, name=f"{name} beside the login storm")
    scenario = beside_the_storm(one_row, args.storm_connections)
    run = functools.partial(
        measure,
        wrk,
        deployment.upstream,
        scenario,
        seconds=args.duration,
        quiet=args.quiet / 100,
    )
    idle: list[Run] = []
    storm: list[Run] = []
    logins: list[LoginStats] = []
    for number in range(1, args.rounds + 1):
        idle.append(run(target, round_number=number, patience=args.patience))
        signing_in = LoginsInBackground(
            deployment.gateways["warning"],
            clients=args.storm_logins,
            seconds=args.duration + 1.5,
        )
        time.sleep(0.5)
        # No waiting for a quiet machine: the storm is the point.
        storm.append(run(beside_storm, round_number=number, patience=0))
        stats = signing_in.stats(timeout=args.duration + 60)
        logins.append(stats)
        step(
            f"login storm, round {number}: p99 {ms(idle[-1].p99_ms)} ms alone, "
            f"{ms(storm[-1].p99_ms)} ms beside {stats.per_second:,.1f} sign-ins/s"
        )
    return Storm(scenario, idle, storm, logins)


def announce(args: argparse.Namespace, stack: Stack, scenarios: Sequence[Scenario]) -> None:
    """How many runs there are and about how long they take."""
    targets_per_upstream = len(stack.deployments[0].targets())
    total = len(stack.deployments) * len(scenarios) * targets_per_upstream
    seconds = total * (args.rounds * (args.duration + 1) + args.warmup)
    if args.quick:
        step(f"{total * args.rounds} runs of {args.duration} s: about {seconds / 60:.0f} minutes")
        return
    seconds += args.rounds * (args.duration + 2) * 4 + args.duration * 2 + 30
    if args.compare_workers > 1:
        seconds += 2 * (args.rounds * (args.duration + 1) + args.warmup) + 15
    step(
        f"{total * args.rounds} runs of {args.duration} s and {total} warm-ups of "
        f"{args.warmup} s, then sign-ins, a login storm and tokens: about "
        f"{seconds / 60:.0f} minutes"
    )


def flame_if_asked(args: argparse.Namespace, wrk: Wrk, stack: Stack, scenario: Scenario) -> str:
    if not args.flame:
        return ""
    found = find_py_spy(args.py_spy)
    if found is None:
        return "no flame graph: py-spy was not found"
    seconds = args.profile or FLAME_SECONDS
    step(f"flame graph of the gateway with py-spy for {seconds} s")
    try:
        return flame_graph(found, wrk, stack, scenario, seconds=seconds, output=args.flame)
    except BenchFailed as exc:
        return f"no flame graph: {exc}"


@dataclass(frozen=True)
class Extras:
    """What the full run measures after the proxied scenarios (the quick run skips it all)."""

    reference: Aggregate | None = None
    logins: list[SignIns] = dataclasses.field(default_factory=list)
    storm: Storm | None = None
    token_rates: list[token_bench.TokenRates] = dataclasses.field(default_factory=list)
    workers: Workers | None = None


def measured_parts(
    args: argparse.Namespace, wrk: Wrk, stack: Stack, scenarios: Sequence[Scenario]
) -> Extras:
    """Everything after the proxied scenarios, unless the run is ``--quick``."""
    if args.quick:
        return Extras()
    reference = gateway_alone(args, wrk, stack)
    step("sign-ins")
    logins = sign_ins(args, stack)
    step("the single-row GET through the gateway beside a login storm")
    storm = login_storm(args, wrk, stack, scenarios[0].path)
    workers = None
    if args.compare_workers > 1:
        workers = workers_runs(args, wrk, stack, scenarios[0])
    step("token signing and verification, in this process")
    token_rates = token_bench.measure(seconds=2.0)
    return Extras(reference, logins, storm, token_rates, workers)


def benchmark(args: argparse.Namespace, wrk_binary: str) -> Outcome:
    started = datetime.now(UTC)
    revision = git_revision()
    clock = time.monotonic()
    upstreams = [UPSTREAMS[key] for key in args.upstreams.split(",")]
    if args.unix_socket:
        upstreams.append(UNIX_SOCKET)
    nginx = None if args.no_nginx else nginx_binary()
    options = Options(
        levels=QUICK_LEVELS if args.quick else LEVELS, workers=args.workers, nginx=nginx
    )
    with ExitStack() as stack:
        running = stack.enter_context(running_stack(stack, upstreams, options))
        wrk = Wrk(wrk_binary, running.workdir, running.token, args.threads)
        scenarios = scenarios_for(
            connections=args.connections,
            row_id=running.row_id,
            organization_id=running.organization_id,
            quick=args.quick,
        )
        check_answers(running, scenarios)
        announce(args, running, scenarios)
        runs, results = proxy_runs(args, wrk, running, scenarios)
        parts = measured_parts(args, wrk, running, scenarios)
        profile, profile_note = profile_if_asked(
            args.profile if not args.flame else 0, args.py_spy, wrk, running, scenarios[0]
        )
        flame = flame_if_asked(args, wrk, running, scenarios[0])
        box = machine(
            postgres_version=running.postgres_version,
            wrk_version=wrk_version(wrk_binary),
            nginx=nginx,
        )
        step("stopping everything, dropping the database and roles")
    return Outcome(
        args=args,
        upstreams=upstreams,
        scenarios=scenarios,
        results=results,
        runs=runs,
        box=box,
        profile=profile,
        profile_note=profile_note,
        flame=flame,
        with_nginx=nginx is not None,
        started=started,
        revision=revision,
        minutes=(time.monotonic() - clock) / 60,
        reference=parts.reference,
        logins=parts.logins,
        storm=parts.storm,
        token_rates=parts.token_rates,
        workers=parts.workers,
    )
