"""The benchmark's report: docs/benchmarks.md, its latency plot, and what the numbers point at."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence

from bench import tokens as token_bench
from bench.plot import Panel, plot_available, write_png
from bench.proxy.benchmark import Outcome
from bench.proxy.machine import REPO_ROOT, Machine
from bench.proxy.measure import Aggregate, Results, Run, aggregate
from bench.proxy.profile import Profile
from bench.proxy.progress import step
from bench.proxy.tables import (
    TARGET_ADDED_P50_MS,
    TARGET_RATIO,
    headline_table,
    profile_lines,
    results_table,
    rounds_table,
    sign_in_lines,
    storm_lines,
    targets_lines,
    targets_table,
    workers_table,
)
from bench.proxy.targets import UPSTREAMS
from bench.soak import REPORT as SOAK
from bench.soak import VERDICT as SOAK_VERDICT

ANOMALY = [
    "An earlier report had PostgREST direct at about 2,370 req/s for "
    "`GET /projects?select=*&order=id` with `Prefer: count=exact` in one upstream and about "
    "820 in the other, on the same 100 rows. The cause was the benchmark, not PostgREST: the "
    "insert scenario ran between them and its rows (about 100,000: 4 targets, 33 s each, at "
    "~1,000 inserts/s) were deleted after it, but deleted rows stay in the table as dead "
    "tuples until (auto)vacuum removes them. Measured in PostgreSQL 16 on this machine, with "
    "autovacuum off to hold the state:",
    "",
    "| `public.projects` | size | pages read by `count(*)` | `count(*)` | the 100 rows, ordered |",
    "| --- | ---: | ---: | ---: | ---: |",
    "| 100 rows, vacuumed | 8 KiB | 1 | 0.03 ms | 0.03 ms |",
    "| + 100,000 rows inserted and deleted, first query | 6.5 MiB | 835 | 4.6-8.1 ms "
    "| 5.4 ms (index scan: 1,384 pages) |",
    "| the same, later queries | 6.5 MiB | 835 | 0.2-0.5 ms | 0.2 ms |",
    "| after `VACUUM ANALYZE` | 8 KiB | 1 | 0.02 ms | 0.03 ms |",
    "",
    "A `count=exact` list runs both queries, so each request read 1,670 pages instead of 2: "
    "about 0.4-0.7 ms more of PostgreSQL CPU per request, on a 2-core machine where a whole "
    "request took about 0.4 ms of it, which is the drop from ~2,370 to ~820 req/s. Until "
    "ANALYZE ran, the planner also expected 83,500 rows and chose an index scan over every "
    "dead entry (the first query after the delete is the slowest: it prunes and sets hint "
    "bits). Not the cause: the PostgREST pool, the same `db-pool` 10 in both upstreams, and "
    "the plans on the vacuumed table, a sequential scan of its one page for both queries. "
    "The fix: before every scenario the benchmark deletes what the "
    "insert added, runs `VACUUM ANALYZE public.projects` and checks that exactly 100 rows "
    "remain (`settle_table` in bench/proxy/scenarios.py), so every scenario and upstream "
    "starts on the same 8 KiB table.",
]
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
            short = {"jwt-cache": "PostgREST, JWT cache", "unix": "PostgREST, Unix socket"}.get(
                upstream.key, "PostgREST"
            )
            panels.append(Panel(f"{short}: {scenario.title}", curves))
    storm = outcome.storm
    if storm is None:
        return panels
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
        f"{COMMAND} [--duration 6] [--connections 16] [--profile 8] [--unix-socket]",
        f"{COMMAND} --quick   # the headline table alone, under 3 minutes, writes nothing",
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
        "machine. The performance targets (issue 15) are in the table *Against the targets*, "
        "each met or not with its measured value; earlier ones stay beside them (at least "
        f"{TARGET_RATIO:.0%} of PostgREST's direct throughput and less than "
        f"{TARGET_ADDED_P50_MS:g} ms added at p50, in *Against PostgREST direct*; a repeated "
        f"token verified in at most {token_bench.TARGET_CACHED_US:g} µs).",
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
        "unless `jwt-cache-max-lifetime` is set (compose.yaml sets it). That check dominates "
        "PostgREST's own cost (compare its CPU per request in the two upstreams), which makes "
        "any proxy look cheap next to it. The second upstream, with PostgREST's JWT cache on, "
        "is the stricter measure of what a proxy adds. With `--unix-socket` a third one is "
        "the second on a Unix socket (`server-unix-socket`; the gateway at "
        "`GATEWAY_UPSTREAM_URL=unix://…`, nginx at `unix:…`), with an identical PostgREST on "
        "TCP as *direct*, since wrk speaks TCP only.",
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
    assert outcome.storm is not None  # the full run measures it
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
    assert outcome.storm is not None  # the full run measures it
    titles["storm"] = outcome.storm.scenario.title
    return [
        "### Against PostgREST direct",
        "",
        *targets_lines(outcome.upstreams, outcome.scenarios, outcome.results),
        "",
        "### Machine",
        "",
        f"- `nproc` {box.nproc}; CPU {box.cpu_model}; memory {box.memory}; Linux {box.kernel}",
        f"- Python {box.python}; {box.versions}",
        f"- Machine busy with other work: a median {other_work(outcome.runs):.0%} in the half "
        "seconds around each run (the benchmark sends nothing then).",
        f"- The load generator (wrk, {args.threads} thread) shares the {box.nproc} cores with "
        "PostgreSQL, PostgREST and the proxies.",
        "- PostgREST with its own defaults (`db-pool` 10, `log-level` error), as compose.yaml "
        "runs it, plus `jwt-cache-max-lifetime` in the second upstream; the gateway with "
        f"{args.workers} Granian worker{'s' if args.workers > 1 else ''} "
        f"(`GATEWAY_WORKERS={args.workers}`) and its default upstream pool; nginx with one "
        "worker.",
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


def other_work(runs: Sequence[Run]) -> float:
    return statistics.median(r.background for r in runs) if runs else 0.0


def soak_verdict() -> str:
    """The verdict line docs/soak.md (written by bench/soak.py) holds, as table cells."""
    if SOAK.exists():
        for line in SOAK.read_text().splitlines():
            if line.startswith(SOAK_VERDICT):
                measured, _, verdict = line.removeprefix(SOAK_VERDICT).partition(" | ")
                return f"{measured.strip()} (docs/soak.md) | {verdict.strip()}"
    return "not measured: run `python bench/soak.py --minutes 10 --tokens 1000` | not measured"


def targets_section(outcome: Outcome) -> list[str]:
    return [
        "## Against the targets",
        "",
        "The issue's targets, each from this run (medians of the rounds; the soak from "
        "docs/soak.md, a separate run). Throughput is the gateway at log level `warning` "
        "against nginx in front of the same PostgREST, interleaved.",
        "",
        *targets_table(
            outcome.upstreams, outcome.scenarios, outcome.results, outcome.storm, soak_verdict()
        ),
        "",
    ]


def workers_section(outcome: Outcome) -> list[str]:
    workers = outcome.workers
    if workers is None:
        return []
    more = max(workers.runs)
    one, many = aggregate(workers.runs[1]), aggregate(workers.runs[more])
    return [
        "## Workers",
        "",
        f"The single-row GET (wrk -c{workers.scenario.connections}) through a gateway of 1 "
        f"Granian worker and one of {more} (`GATEWAY_WORKERS`), both at log level `warning`, "
        f"in front of {workers.upstream.title}; {outcome.args.rounds} rounds in alternating "
        "order, medians.",
        "",
        *workers_table(workers.runs),
        "",
        f"Here {more} workers served {many.rps / one.rps:.2f}x the requests per second of one, "
        f"at {many.cpu_us_per_request / one.cpu_us_per_request:.2f}x the gateway CPU per "
        f"request. The {outcome.box.nproc} cores are shared by wrk, PostgreSQL, PostgREST and "
        "the gateway, so more workers compete with PostgREST for the same cores: they buy "
        "throughput only while the gateway's one worker is the bottleneck. On a bigger "
        "machine, or with PostgREST and PostgreSQL elsewhere, "
        "`GATEWAY_WORKERS=auto` (one per core the process may use) lets the gateway use "
        "every core; each worker has its own verified-token cache and upstream pool and "
        "follows revocations and key rotations on its own (tests/e2e/"
        "test_workers.py proves both reach every worker). Leave cores for PostgREST when it "
        "runs on the same machine: workers = cores minus PostgREST's share.",
        "",
    ]


def anomaly_section() -> list[str]:
    return [
        "## The 100-row anomaly",
        "",
        *ANOMALY,
        "",
    ]


def flame_section(outcome: Outcome) -> list[str]:
    lines = [
        "## Flame graphs",
        "",
        "py-spy (`record --gil --subprocesses`) of the gateway at log level `warning` under "
        "the single-row load, in front of PostgREST with the JWT cache:",
        "",
        "- [before](flame-before.svg): the aiohttp upstream client (issue 15's starting point).",
        "- [after](flame-after.svg): the current client, written by "
        f"`{COMMAND} --quick --flame docs/flame-after.svg`.",
    ]
    if outcome.flame:
        lines += ["", f"This run: {outcome.flame}."]
    return [*lines, ""]


def render(outcome: Outcome, plot: str | None) -> str:
    lines = [
        *introduction(outcome.box),
        *headline(outcome),
        *targets_section(outcome),
        *proxying(outcome, plot),
        *anomaly_section(),
        *workers_section(outcome),
        *logins_and_tokens(outcome),
        *details(outcome),
        *flame_section(outcome),
    ]
    notes = findings(outcome.profile, outcome.reference, outcome.results)
    if notes:
        at = lines.index("### Against PostgREST direct")
        lines[at:at] = ["### What the numbers point at", "", *notes, ""]
    return "\n".join(lines)


def headline(outcome: Outcome) -> list[str]:
    return [
        "## Headline",
        "",
        *headline_table(outcome.upstreams, outcome.results, outcome.args.connections),
        "",
        "Throughput as ratios to PostgREST direct (gateway at log level `warning`); the last "
        "two columns: the p50 of one connection through the proxy minus PostgREST's. "
        f"`{COMMAND} --quick` prints this table alone in under 3 minutes.",
        "",
    ]


def quick_report(outcome: Outcome) -> str:
    args = outcome.args
    return "\n".join(
        [
            f"Quick run, {outcome.started:%Y-%m-%d %H:%M} UTC, commit {outcome.revision}, "
            f"{outcome.minutes:.1f} minutes: {args.rounds} rounds of {args.duration} s per "
            f"target, interleaved, medians; gateway with {args.workers} worker(s); other work "
            f"on the machine: a median {other_work(outcome.runs):.0%} busy around the runs.",
            "",
            *headline_table(outcome.upstreams, outcome.results, args.connections),
            "",
            *(
                f"{r.upstream}, {r.scenario}, {r.target}, round {r.round}: {r.rps:,.0f} req/s, "
                f"p50 {r.p50_ms:.2f} ms, {r.cpu_us_per_request:,.0f} µs CPU/request"
                for r in outcome.runs
            ),
            *([f"flame graph: {outcome.flame}"] if outcome.flame else []),
        ]
    )


KEPT = ("## Why the targets not met are not met here", "## Granian settings", "## Presigned URLs")
"""Sections of docs/benchmarks.md written by hand from other measurements (bench/presign.py,
bench/granian_options.py): a new report carries them over from the old one."""


def kept_sections(old: str) -> list[str]:
    lines = old.splitlines()
    kept: list[str] = []
    for heading in KEPT:
        if heading in lines:
            start = lines.index(heading)
            end = next(
                (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                len(lines),
            )
            kept += [*lines[start:end], ""] if lines[end - 1] else lines[start:end]
    return kept


def publish(outcome: Outcome, *, write: bool) -> None:
    """The report on stdout; with ``write``, also docs/benchmarks.md and (with matplotlib) the
    plot."""
    if outcome.args.quick:
        print(quick_report(outcome))
        return
    plot = None
    if write and plot_available():
        write_png(panels_of(outcome), PLOT, title=f"Latency by percentile ({outcome.box.cpu_model}"
                  f", {outcome.box.nproc} cores, {outcome.started:%Y-%m-%d})")  # fmt: skip
        plot = PLOT.name
        step(f"wrote {PLOT.relative_to(REPO_ROOT)}")
    report = render(outcome, plot)
    if REPORT.exists():
        carried = kept_sections(REPORT.read_text())
        if carried:
            report = report.rstrip("\n") + "\n\n" + "\n".join(carried).rstrip("\n") + "\n"
    print(report)
    if write:
        REPORT.write_text(report)
        step(f"wrote {REPORT.relative_to(REPO_ROOT)}")
