"""The report's tables and verdicts: ratios to PostgREST direct, rounds, sign-ins, the profile."""

from __future__ import annotations

import statistics
from collections.abc import Iterator, Sequence

from bench.proxy.benchmark import SignIns, Storm
from bench.proxy.measure import Aggregate, Results, Run, aggregate, ms
from bench.proxy.profile import PROFILE_RATE, Profile
from bench.proxy.scenarios import Scenario
from bench.proxy.targets import NGINX, Upstream

TARGET_RATIO = 0.90
TARGET_ADDED_P50_MS = 1.0
TARGET_STORM_P99 = 2.0


def comparisons(
    upstreams: Sequence[Upstream], scenarios: Sequence[Scenario], results: Results
) -> Iterator[tuple[Upstream, Scenario, str, Aggregate, Aggregate]]:
    """(upstream, scenario, proxy, PostgREST direct, through that proxy) for every proxy."""
    for upstream in upstreams:
        for scenario in scenarios:
            direct = results[(upstream.key, scenario.key, "direct")]
            for (u, s, target), via in results.items():
                if (u, s) == (upstream.key, scenario.key) and target != "direct":
                    yield upstream, scenario, target, direct, via


def results_table(
    upstreams: Sequence[Upstream], scenarios: Sequence[Scenario], results: Results
) -> list[str]:
    lines = [
        "| upstream | scenario | through | req/s direct | req/s through | ratio "
        "| p50 direct | p50 through | p99 direct | p99 through | added p50 "
        "| CPU/request PostgREST, proxy |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for upstream, scenario, proxy, direct, via in comparisons(upstreams, scenarios, results):
        lines.append(
            f"| {upstream.title} | {scenario.title} | {proxy} | {direct.rps:,.0f} "
            f"| {via.rps:,.0f} | **{via.rps / direct.rps:.0%}** | {ms(direct.p50_ms)} ms "
            f"| {ms(via.p50_ms)} ms | {ms(direct.p99_ms)} ms | {ms(via.p99_ms)} ms "
            f"| **{via.p50_ms - direct.p50_ms:+.2f} ms** "
            f"| {direct.cpu_us_per_request:,.0f} µs, {via.cpu_us_per_request:,.0f} µs |"
        )
    return lines


def targets_lines(
    upstreams: Sequence[Upstream], scenarios: Sequence[Scenario], results: Results
) -> list[str]:
    lines = []
    for upstream, scenario, proxy, direct, via in comparisons(upstreams, scenarios, results):
        if proxy == NGINX:
            continue
        ratio = via.rps / direct.rps
        added = via.p50_ms - direct.p50_ms
        lines.append(
            f"- {upstream.title}, {scenario.title}, {proxy}: throughput "
            f"{ratio:.0%} of direct ({'meets' if ratio >= TARGET_RATIO else 'misses'} "
            f"≥ {TARGET_RATIO:.0%}); p50 {added:+.2f} ms "
            f"({'meets' if added < TARGET_ADDED_P50_MS else 'misses'} "
            f"< {TARGET_ADDED_P50_MS:g} ms)"
        )
    return lines


def rounds_table(runs: Sequence[Run], titles: dict[str, str]) -> list[str]:
    lines = [
        "| upstream | scenario | target | round | req/s | p50 | p90 | p99 | socket errors "
        "| CPU/request | other work | machine busy during |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        lines.append(
            f"| {titles[run.upstream]} | {titles[run.scenario]} | {run.target} | {run.round} "
            f"| {run.rps:,.0f} | {ms(run.p50_ms)} ms | {ms(run.p90_ms)} ms "
            f"| {ms(run.p99_ms)} ms | {run.socket_errors} | {run.cpu_us_per_request:,.0f} µs "
            f"| {run.background:.0%} | {run.busy:.0%} |"
        )
    return lines


def sign_in_lines(logins: Sequence[SignIns]) -> list[str]:
    lines = [
        "| clients | sign-ins per second | p50 | p99 | gateway CPU per sign-in |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for entry in logins:
        stats = entry.stats
        lines.append(
            f"| {stats.clients} | {stats.per_second:,.1f} | {ms(stats.p50_ms)} ms "
            f"| {ms(stats.percentile(0.99))} ms | {entry.cpu_ms_per_login:,.1f} ms |"
        )
    return lines


def storm_lines(storm: Storm, storm_logins: int) -> list[str]:
    idle, busy = aggregate(storm.idle), aggregate(storm.storm)
    ratio = busy.p99_ms / idle.p99_ms
    logins = statistics.median(s.per_second for s in storm.logins)
    verdict = "meets" if ratio <= TARGET_STORM_P99 else "misses"
    return [
        "| gateway (warning), " + storm.scenario.title + " | req/s | p50 | p99 |",
        "| --- | ---: | ---: | ---: |",
        f"| alone | {idle.rps:,.0f} | {ms(idle.p50_ms)} ms | {ms(idle.p99_ms)} ms |",
        f"| beside {storm_logins} clients signing in back to back ({logins:,.1f} sign-ins/s) "
        f"| {busy.rps:,.0f} | {ms(busy.p50_ms)} ms | {ms(busy.p99_ms)} ms |",
        "",
        f"p99 under the login storm is **{ratio:.1f}x** its p99 alone ({verdict} the target "
        f"of ≤ {TARGET_STORM_P99:g}x; medians of {len(storm.idle)} rounds, alone and beside "
        "the storm in turn).",
    ]


def profile_lines(profile: Profile | None, note: str, upstream: str, seconds: int) -> list[str]:
    if profile is None:
        return [note]
    total = max(1, profile.samples)
    lines = [
        f"py-spy (`record --gil --subprocesses --function --rate {PROFILE_RATE}`) sampled the "
        f"gateway at log level warning in front of {upstream} for {seconds} s under the "
        f"single-row load: the GIL was held in {profile.samples} of {profile.possible} "
        f"samples ({profile.samples / max(1, profile.possible):.0%} of the time; on a busy "
        "machine that includes time the thread was ready but waiting for a core). Shares "
        "below are of the samples with the GIL held. Granian's Rust side (HTTP parsing, "
        "sockets) and waiting in the event loop (`epoll`) do not hold the GIL; the innermost "
        "Python frame of code that runs in C without releasing it (a socket `send`, uvloop "
        "callbacks) is charged with that time.",
        "",
        "Where the samples were (the package of the innermost Python frame):",
        "",
        "| where | share |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {n / total:.1%} |" for name, n in profile.categories]
    lines += [
        "",
        "Functions with the most samples of their own (self):",
        "",
        "| function | self |",
        "| --- | ---: |",
    ]
    lines += [f"| `{name}` | {n / total:.1%} |" for name, n in profile.self_top]
    lines += [
        "",
        "The proxy path, inclusive (a function and everything it calls):",
        "",
        "| function | inclusive |",
        "| --- | ---: |",
    ]
    lines += [f"| `{name}` | {n / total:.1%} |" for name, n in profile.inclusive_top]
    return lines


# --- the headline (--quick) and the issue's targets ------------------------------------------

GATEWAY = "gateway (warning)"
TARGET_NGINX_RATIO = 0.90
TARGET_CPU_US = 80.0
TARGET_ONE_CONNECTION_MS = 0.2
TARGET_SCENARIOS = ("one", "list", "insert")


def _ratio(results: Results, upstream: str, scenario: str, top: str, bottom: str) -> float | None:
    over, under = results.get((upstream, scenario, top)), results.get((upstream, scenario, bottom))
    return None if over is None or under is None else over.rps / under.rps


def _added_p50(results: Results, upstream: str, target: str) -> float | None:
    direct, via = (
        results.get((upstream, "one-c1", "direct")),
        results.get((upstream, "one-c1", target)),
    )
    return None if direct is None or via is None else via.p50_ms - direct.p50_ms


def _shown(value: float | None, form: str) -> str:
    return "not measured" if value is None else format(value, form)


def headline_table(upstreams: Sequence[Upstream], results: Results, connections: int) -> list[str]:
    """The issue's table: throughput as ratios to PostgREST direct at ``connections``, and the
    p50 one connection adds."""
    lines = [
        f"| upstream (1-row GET, wrk -c{connections}) | direct | gateway | nginx | gateway/nginx "
        "| 1 connection, p50 added: gateway | nginx |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for upstream in upstreams:
        key = upstream.key
        direct = results[(key, "one", "direct")]
        gateway = _ratio(results, key, "one", GATEWAY, "direct")
        nginx = _ratio(results, key, "one", NGINX, "direct")
        both = _ratio(results, key, "one", GATEWAY, NGINX)
        lines.append(
            f"| {upstream.title} | 1.00 ({direct.rps:,.0f} req/s) | {_shown(gateway, '.2f')} "
            f"| {_shown(nginx, '.2f')} | **{_shown(both, '.2f')}** "
            f"| {_shown(_added_p50(results, key, GATEWAY), '+.2f')} ms "
            f"| {_shown(_added_p50(results, key, NGINX), '+.2f')} ms |"
        )
    return lines


def _verdict(value: float | None, ok: bool) -> str:
    return "not measured" if value is None else ("**met**" if ok else "**not met**")


def targets_table(
    upstreams: Sequence[Upstream],
    scenarios: Sequence[Scenario],
    results: Results,
    storm: Storm | None,
    soak: str,
) -> list[str]:
    """Each target of the issue: met or not, with the measured value."""
    titles = {s.key: s.title for s in scenarios}
    lines = ["| target | measured | verdict |", "| --- | ---: | --- |"]
    for upstream in upstreams:
        for key in TARGET_SCENARIOS:
            if key not in titles:
                continue
            ratio = _ratio(results, upstream.key, key, GATEWAY, NGINX)
            lines.append(
                f"| gateway/nginx throughput ≥ {TARGET_NGINX_RATIO:.2f}: {titles[key]}, "
                f"{upstream.title} | {_shown(ratio, '.2f')} "
                f"| {_verdict(ratio, ratio is not None and ratio >= TARGET_NGINX_RATIO)} |"
            )
    for upstream in upstreams:
        one = results.get((upstream.key, "one", GATEWAY))
        cpu = None if one is None else one.cpu_us_per_request
        lines.append(
            f"| gateway CPU per proxied request ≤ {TARGET_CPU_US:g} µs: 1 row, {upstream.title} "
            f"| {_shown(cpu, ',.0f')} µs "
            f"| {_verdict(cpu, cpu is not None and cpu <= TARGET_CPU_US)} |"
        )
    for upstream in upstreams:
        added = _added_p50(results, upstream.key, GATEWAY)
        lines.append(
            f"| one connection: ≤ {TARGET_ONE_CONNECTION_MS:g} ms added at p50, {upstream.title} "
            f"| {_shown(added, '+.2f')} ms "
            f"| {_verdict(added, added is not None and added <= TARGET_ONE_CONNECTION_MS)} |"
        )
    if storm is not None:
        ratio = aggregate(storm.storm).p99_ms / aggregate(storm.idle).p99_ms
        lines.append(
            f"| p99 of proxied GETs beside a login storm ≤ {TARGET_STORM_P99:g}x its p99 alone "
            f"| {ratio:.1f}x | {_verdict(ratio, ratio <= TARGET_STORM_P99)} |"
        )
    lines.append(f"| memory flat over a 10-minute soak, 1,000 distinct tokens | {soak} |")
    return lines


def workers_table(runs: dict[int, list[Run]]) -> list[str]:
    """Through 1 and N workers: medians over the rounds."""
    lines = [
        "| gateway workers | req/s | p50 | p99 | gateway CPU/request |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    one = aggregate(runs[min(runs)])
    for count, count_runs in runs.items():
        found = aggregate(count_runs)
        lines.append(
            f"| {count} | {found.rps:,.0f} ({found.rps / one.rps:.2f}x) | {ms(found.p50_ms)} ms "
            f"| {ms(found.p99_ms)} ms | {found.cpu_us_per_request:,.0f} µs |"
        )
    return lines
