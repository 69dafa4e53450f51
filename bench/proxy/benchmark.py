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
from bench.proxy.profile import Profile, profile_if_asked
from bench.proxy.progress import BenchFailed, step
from bench.proxy.scenarios import (
    Scenario,
    beside_the_storm,
    check_answers,
    healthz,
    remove_inserted,
    scenarios_for,
)
from bench.proxy.targets import (
    UPSTREAMS,
    Stack,
    Upstream,
    gateway_pid,
    gateway_target,
    running_stack,
)


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
    storm: Storm
    token_rates: list[token_bench.TokenRates]
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
    seconds += args.rounds * (args.duration + 2) * 4 + args.duration * 2 + 30
    step(
        f"{total * args.rounds} runs of {args.duration} s and {total} warm-ups of "
        f"{args.warmup} s, then sign-ins, a login storm and tokens: about "
        f"{seconds / 60:.0f} minutes"
    )


def benchmark(args: argparse.Namespace, wrk_binary: str) -> Outcome:
    started = datetime.now(UTC)
    revision = git_revision()
    clock = time.monotonic()
    upstreams = [UPSTREAMS[key] for key in args.upstreams.split(",")]
    nginx = None if args.no_nginx else nginx_binary()
    with ExitStack() as stack:
        running = stack.enter_context(running_stack(stack, upstreams, nginx))
        wrk = Wrk(wrk_binary, running.workdir, running.token, args.threads)
        scenarios = scenarios_for(
            connections=args.connections,
            row_id=running.row_id,
            organization_id=running.organization_id,
        )
        check_answers(running, scenarios)
        announce(args, running, scenarios)
        runs, results = proxy_runs(args, wrk, running, scenarios)
        reference = gateway_alone(args, wrk, running)
        step("sign-ins")
        logins = sign_ins(args, running)
        step("the single-row GET through the gateway beside a login storm")
        storm = login_storm(args, wrk, running, scenarios[0].path)
        step("token signing and verification, in this process")
        token_rates = token_bench.measure(seconds=2.0)
        profile, profile_note = profile_if_asked(
            args.profile, args.py_spy, wrk, running, scenarios[0]
        )
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
        reference=reference,
        logins=logins,
        storm=storm,
        token_rates=token_rates,
        with_nginx=nginx is not None,
        started=started,
        revision=revision,
        minutes=(time.monotonic() - clock) / 60,
    )
