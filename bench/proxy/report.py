"""The benchmark's report: docs/benchmarks.md, its latency plot, and what the numbers point at."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence

from bench import tokens as token_bench
from bench.plot import Panel, plot_available, write_png
from bench.proxy.benchmark import Outcome
from bench.proxy.machine import REPO_ROOT, Machine
from bench.proxy.measure import Aggregate, Results, Run
from bench.proxy.profile import Profile
from bench.proxy.progress import step
from bench.proxy.tables import (
    TARGET_ADDED_P50_MS,
    TARGET_RATIO,
    TARGET_STORM_P99,
    profile_lines,
    results_table,
    rounds_table,
    sign_in_lines,
    storm_lines,
    targets_lines,
)
from bench.proxy.targets import UPSTREAMS

REPORT = REPO_ROOT / "docs" / "benchmarks.md"
PLOT = REPO_ROOT / "docs" / "benchmarks.png"
COMMAND = "uv run --group bench python -m bench.proxy"


def options_of(args: argparse.Namespace) -> str:
    options = f"--duration {args.duration} --connections {args.connections}"
    if args.rounds != 3:
        options += f" --rounds {args.rounds}"
    if args.warmup != 3:
        options += f" --warmup {args.warmup}"
    if args.upstreams != ",".join(UPSTREAMS):
        options += f" --upstreams {args.upstreams}"
    if args.no_nginx:
        options += " --no-nginx"
    if args.profile:
        options += f" --profile {args.profile}"
    if args.quiet != 25 or args.patience != 20:
        options += f" --quiet {args.quiet} --patience {args.patience:g}"
    return options


def gateway_findings(reference: Aggregate | None, results: Results) -> list[str]:
    """What logging costs, and what the gateway costs with nothing proxied."""
    lines = []
    logging_costs = [
        via.cpu_us_per_request - results[(u, s, "gateway (warning)")].cpu_us_per_request
        for (u, s, target), via in results.items()
        if target == "gateway (info)"
    ]
    if logging_costs:
        lines.append(
            "- **Log level `info`** (one line per request) against `warning`: a median "
            f"{statistics.median(logging_costs):+,.0f} µs of gateway CPU per request (over "
            "all upstreams and scenarios; compare the two rows of each)."
        )
    if reference is not None:
        proxied = [
            via.cpu_us_per_request
            for (_, s, target), via in results.items()
            if target == "gateway (warning)" and s == "one"
        ]
        lines.append(
            f"- **The gateway alone**: `GET /healthz` (Granian, Litestar, RequestLog, no "
            f"upstream) ran at {reference.rps:,.0f} req/s with {reference.cpu_us_per_request:,.0f}"
            " µs of gateway CPU per request; a proxied single-row GET cost the gateway "
            f"{statistics.median(proxied):,.0f} µs (median over the upstreams)."
            if proxied
            else f"- **The gateway alone**: `GET /healthz` ran at {reference.rps:,.0f} req/s."
        )
    return lines


def profile_findings(profile: Profile) -> list[str]:
    """Where the profile says the gateway's GIL time goes."""
    aiohttp = profile.share(category_name="aiohttp: the upstream HTTP client")
    send = profile.share(function="StreamWriter._write (aiohttp/")
    lines = [
        f"- **aiohttp**, the upstream client, holds {aiohttp:.0%} of the GIL time (innermost "
        f"frames); {send:.0%} is `StreamWriter._write`, where the request goes out with a "
        "`send()` on the loopback socket (the kernel runs the receiving side's TCP work in "
        "that call too)."
    ]
    litestar = profile.share(category_name="Litestar: app, middleware stack, routing")
    mount = profile.share(function="PostgrestMount.__call__ (gateway/proxy/mount.py)")
    door = profile.share(function="FrontDoor.__call__ (gateway/web/front_door.py)")
    outside = profile.share(function="Litestar.__call__ (litestar/app.py)")
    lines.append(
        f"- **Around the mount**: {door:.0%} of the GIL time is inside `FrontDoor.__call__` "
        f"(the server's dispatch, gateway/web/front_door.py), {mount:.0%} inside "
        f"`PostgrestMount.__call__`, so {door - mount:.0%} goes to the dispatch, RequestLog "
        f"and the CORS check around it. Litestar's frames hold {litestar:.0%} "
        f"({outside:.0%} inside `Litestar.__call__`: the lifespan and other paths, not the "
        "proxied requests)."
    )
    addresses = profile.share(category_name="stdlib ipaddress") + profile.share(
        category_name="gateway: client address (gateway/asgi/client_address.py)"
    )
    if addresses >= 0.02:
        lines.append(
            f"- **Client address**: {addresses:.0%} goes to `client_address()` and the stdlib "
            "`ipaddress` module (parsing the peer, and an IPv4-mapped IPv6 copy of it, on every "
            "request), although no `GATEWAY_TRUSTED_PROXIES` are set here and the answer is "
            "the socket peer as it is."
        )
    return lines


def findings(profile: Profile | None, reference: Aggregate | None, results: Results) -> list[str]:
    """What the numbers point at, computed from this run (so they stay true when code changes)."""
    lines = gateway_findings(reference, results)
    return lines if profile is None else [*lines, *profile_findings(profile)]


def panels_of(outcome: Outcome) -> list[Panel]:
    """One panel per upstream and scenario (the round with the median throughput of each
    target), and one for the login storm."""

    def median_run(runs: Sequence[Run]) -> Run:
        return sorted(runs, key=lambda r: r.rps)[len(runs) // 2]

    panels = []
    for upstream in outcome.upstreams:
        for scenario in outcome.scenarios:
            curves: dict[str, Sequence[float]] = {}
            for target in dict.fromkeys(r.target for r in outcome.runs):
                mine = [
                    r
                    for r in outcome.runs
                    if (r.upstream, r.scenario, r.target) == (upstream.key, scenario.key, target)
                ]
                if mine:
                    curves[target] = median_run(mine).curve_ms
            short = "PostgREST, JWT cache" if upstream.key == "jwt-cache" else "PostgREST"
            panels.append(Panel(f"{short}: {scenario.title}", curves))
    storm = outcome.storm
    panels.append(
        Panel(
            f"gateway (warning), {storm.scenario.title}: alone and beside a login storm",
            {
                "alone": median_run(storm.idle).curve_ms,
                "login storm": median_run(storm.storm).curve_ms,
            },
        )
    )
    return panels


def introduction(box: Machine) -> list[str]:
    return [
        "# Benchmark: PostgREST direct, through the gateway, through nginx",
        "",
        "Written by `python -m bench.proxy` (bench/proxy/); to measure again (and replace this "
        "file and docs/benchmarks.png), from the repository root:",
        "",
        "```sh",
        f"{COMMAND} [--duration 10] [--connections 32] [--profile 8]",
        "```",
        "",
        "It needs `wrk` (`apt-get install wrk`), PostgreSQL (as for the tests) and, for the "
        "nginx rows, nginx (`apt-get install nginx-light`; without it those rows are left out). "
        "It creates a database, three roles, a keystore, PostgREST 12.0.2, `gateway serve` "
        "and nginx processes, and removes all of them afterwards (on error and Ctrl-C too). "
        "The `bench` dependency group brings matplotlib for the plot. `--profile 8` adds a "
        "py-spy profile (`python3 -m pip install --target /tmp/pyspy py-spy`). `--help` lists "
        "the rest.",
        "",
        "**Absolute numbers are this machine's** and move with whatever else runs on it: the "
        f"load generator, PostgreSQL, PostgREST and the proxies share its {box.nproc} cores, "
        "so every cycle a proxy spends is taken from PostgREST. **The ratios are the "
        "headline**, with the CPU time per request, which depends least on the rest of the "
        f"machine. Targets (from the issue): through the gateway at least {TARGET_RATIO:.0%} "
        f"of PostgREST's direct throughput and less than {TARGET_ADDED_P50_MS:g} ms added at "
        f"p50; p99 under a login storm at most {TARGET_STORM_P99:g}x its p99 alone; a repeated "
        f"token verified in at most {token_bench.TARGET_CACHED_US:g} µs.",
        "",
    ]


def proxying(outcome: Outcome, plot: str | None) -> list[str]:
    args = outcome.args
    quiet = args.quiet / 100
    noisy = sum(r.background > quiet for r in outcome.runs)
    nginx_text = (
        ", and nginx (one worker, keep-alive to PostgREST, no access log: a plain reverse proxy "
        "that checks nothing, the floor for any proxy)"
        if outcome.with_nginx
        else " (nginx was not installed, so the nginx rows are missing: `apt-get install "
        "nginx-light`)"
    )
    lines = [
        "## Proxying",
        "",
        f"Measured {outcome.started:%Y-%m-%d %H:%M} UTC at commit {outcome.revision} with "
        f"`{COMMAND} {options_of(args)}` "
        f"({outcome.minutes:.1f} minutes in all): per upstream and scenario, a {args.warmup} s "
        f"warm-up of each target, then {args.rounds} rounds of {args.duration} s against "
        "PostgREST direct, the gateway at log level `warning`, the gateway at the default "
        f"`info` (one log line per request){nginx_text}, interleaved in alternating order; "
        f"the table holds the medians over the rounds. wrk runs {args.threads} thread; every "
        "request carries the same bearer token from `POST /auth/login`, so the gateway's "
        "verified-token cache answers, as it does for any client that reuses its token. The "
        "insert is `POST /projects` with `Prefer: return=minimal` under the example's "
        "row-level security (its rows are deleted after each upstream).",
        "",
        *results_table(outcome.upstreams, outcome.scenarios, outcome.results),
        "",
        "- **Two upstreams.** PostgREST 12 checks the JWT's ES256 signature on every request "
        "unless `jwt-cache-max-lifetime` is set, and compose.yaml does not set it. That check "
        "dominates PostgREST's own cost (compare its CPU per request in the two upstreams), "
        "which makes any proxy look cheap next to it. The second upstream, with PostgREST's "
        "JWT cache on, is the stricter measure of what a proxy adds.",
        "- *added p50* is the proxy's p50 minus PostgREST's. Under a saturating load it is "
        "mostly queueing (the throughput gap seen as latency); the one-connection rows are the "
        "latency a proxy adds to one request.",
        "- *CPU/request* is user + system CPU time (from /proc) divided by the requests "
        "served: PostgREST's own in the direct runs, the proxy's processes' in the others "
        "(in those, PostgREST spends its direct-run CPU on top).",
        "- Other work on the machine: before each run the benchmark waits (up to "
        f"{args.patience:g} s) for the machine to be at most {quiet:.0%} busy, and it measures "
        "how busy the machine is in the half seconds before and after each run, when the "
        f"benchmark sends nothing. {noisy} of {len(outcome.runs)} runs saw more than "
        f"{quiet:.0%} (*other work* in the table of every round); interleaving spreads that "
        "over all targets alike, and CPU time per request is the least affected.",
        "",
    ]
    if plot:
        return [
            *lines,
            f"![Latency by percentile, per scenario and target]({plot})",
            "",
            "Latency by percentile (log scale; each *nine* gets the same width) of the round "
            "with the median throughput of each target.",
            "",
        ]
    return [*lines, "No plot: matplotlib is missing (run with `uv run --group bench`).", ""]


def logins_and_tokens(outcome: Outcome) -> list[str]:
    args = outcome.args
    return [
        "## Sign-in",
        "",
        f"`POST /auth/login` through the gateway (warning), clients signing in back to back "
        f"for {args.duration} s each (argon2id with the gateway's defaults, in its thread "
        "pool; every sign-in also writes a session and an audit event).",
        "",
        *sign_in_lines(outcome.logins),
        "",
        "## Proxying beside a login storm",
        "",
        *storm_lines(outcome.storm, args.storm_logins),
        "",
        "## Tokens",
        "",
        "In the benchmark's own process, one thread, so per core (`bench/tokens.py`): tokens "
        "shaped as the gateway issues them, signed; distinct tokens verified (all checks, what "
        "a token costs the first time); one token verified again through the proxy's cache.",
        "",
        *token_bench.table(outcome.token_rates),
        "",
    ]


def details(outcome: Outcome) -> list[str]:
    args, box = outcome.args, outcome.box
    titles = {s.key: s.title for s in outcome.scenarios}
    titles.update({u.key: u.title for u in outcome.upstreams})
    titles["storm"] = outcome.storm.scenario.title
    return [
        "### Against the targets",
        "",
        *targets_lines(outcome.upstreams, outcome.scenarios, outcome.results),
        "",
        "### Machine",
        "",
        f"- `nproc` {box.nproc}; CPU {box.cpu_model}; memory {box.memory}; Linux {box.kernel}",
        f"- Python {box.python}; {box.versions}",
        f"- The load generator (wrk, {args.threads} thread) shares the {box.nproc} cores with "
        "PostgreSQL, PostgREST and the proxies.",
        "- PostgREST with its own defaults (`db-pool` 10, `log-level` error), as compose.yaml "
        "runs it, plus `jwt-cache-max-lifetime` in the second upstream; the gateway with one "
        "Granian worker (`GATEWAY_WORKERS=1`, the default) and its default upstream pool; "
        "nginx with one worker.",
        "",
        "### Every round",
        "",
        *rounds_table([*outcome.runs, *outcome.storm.idle, *outcome.storm.storm], titles),
        "",
        "## Profile",
        "",
        *profile_lines(
            outcome.profile, outcome.profile_note, outcome.upstreams[-1].title, args.profile
        ),
        "",
    ]


def render(outcome: Outcome, plot: str | None) -> str:
    lines = [
        *introduction(outcome.box),
        *proxying(outcome, plot),
        *logins_and_tokens(outcome),
        *details(outcome),
    ]
    notes = findings(outcome.profile, outcome.reference, outcome.results)
    if notes:
        at = lines.index("### Against the targets")
        lines[at:at] = ["### What the numbers point at", "", *notes, ""]
    return "\n".join(lines)


def publish(outcome: Outcome, *, write: bool) -> None:
    """The report on stdout; with ``write``, also docs/benchmarks.md and (with matplotlib) the
    plot."""
    plot = None
    if write and plot_available():
        write_png(panels_of(outcome), PLOT, title=f"Latency by percentile ({outcome.box.cpu_model}"
                  f", {outcome.box.nproc} cores, {outcome.started:%Y-%m-%d})")  # fmt: skip
        plot = PLOT.name
        step(f"wrote {PLOT.relative_to(REPO_ROOT)}")
    report = render(outcome, plot)
    print(report)
    if write:
        REPORT.write_text(report)
        step(f"wrote {REPORT.relative_to(REPO_ROOT)}")
