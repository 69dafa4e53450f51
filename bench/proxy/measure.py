"""One wrk run: load and latency, the CPU time the target used, how busy the machine was."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.plot import PERCENTILES
from bench.proxy.progress import BenchFailed
from bench.proxy.scenarios import Scenario
from bench.proxy.targets import Target, Upstream

CLK_TCK = os.sysconf("SC_CLK_TCK")

# wrk prints this line at the end of a run (its --latency table comes from the same histogram).
WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  local curve = {}
  for _, q in ipairs({@PERCENTILES@}) do
    curve[#curve + 1] = string.format("%d", latency:percentile(q))
  end
  io.write(string.format(
    "BENCH {\\"requests\\": %d, \\"duration_us\\": %d, \\"bytes\\": %d, " ..
    "\\"p50_us\\": %d, \\"p90_us\\": %d, \\"p99_us\\": %d, \\"max_us\\": %d, " ..
    "\\"connect\\": %d, \\"read\\": %d, \\"write\\": %d, \\"status\\": %d, " ..
    "\\"timeout\\": %d, \\"curve_us\\": [%s]}\\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout, table.concat(curve, ",")))
end
""".replace("@PERCENTILES@", ", ".join(f"{p:g}" for p in PERCENTILES))
# A request other than GET: wrk sends the same method, body and headers every time.
WRK_REQUEST = """
wrk.method = "@METHOD@"
wrk.body = '@BODY@'
wrk.headers["Content-Type"] = "application/json"
"""


def ms(value: float) -> str:
    return f"{value:.2f}"


# --- CPU time and how busy the machine is ------------------------------------------------------


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(values[:8])
    return total - values[3] - values[4], total


def busy_between(before: tuple[int, int], after: tuple[int, int]) -> float:
    return (after[0] - before[0]) / max(1, after[1] - before[1])


def background_busy(seconds: float = 0.5) -> float:
    """How busy the machine is while the benchmark itself sends nothing: other people's work."""
    before = machine_jiffies()
    time.sleep(seconds)
    return busy_between(before, machine_jiffies())


def settle(quiet: float, patience: float) -> float:
    """Wait (at most ``patience`` seconds) for the machine to be at most ``quiet`` busy."""
    deadline = time.monotonic() + patience
    busy = background_busy()
    while busy > quiet and time.monotonic() < deadline:
        busy = background_busy()
    return busy


# --- wrk ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wrk:
    """How every wrk run of a benchmark is made."""

    binary: str
    folder: Path
    """Where its scripts go."""
    token: str
    """The bearer token every request carries."""
    threads: int


@dataclass(frozen=True)
class Run:
    upstream: str
    scenario: str
    target: str
    round: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    socket_errors: int
    cpu_us_per_request: float
    background: float
    """The machine's busy share in the half seconds before and after the run, the higher:
    work of others, since the benchmark sends nothing then."""
    busy: float
    """The machine's busy share during the run."""
    curve_ms: tuple[float, ...]
    """Latency at each of bench.plot.PERCENTILES."""


@dataclass(frozen=True)
class Aggregate:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float


Results = dict[tuple[str, str, str], Aggregate]
"""(upstream, scenario, target) → medians."""


def wrk_version(wrk: str) -> str:
    output = subprocess.run(  # noqa: S603 - the wrk found on PATH
        [wrk, "-v"], capture_output=True, text=True, check=False
    )
    return (output.stdout or output.stderr).splitlines()[0].split(" [")[0].strip()


def wrk_script(scenario: Scenario, folder: Path) -> Path:
    """The wrk script: the request (unless a plain GET) and the line wrk ends with."""
    path = folder / f"wrk-{scenario.key}.lua"
    request = ""
    if scenario.method != "GET":
        request = WRK_REQUEST.replace("@METHOD@", scenario.method).replace("@BODY@", scenario.body)
    path.write_text(request + WRK_DONE)
    return path


def wrk_command(wrk: Wrk, url: str, *, scenario: Scenario, seconds: int) -> list[str]:
    command = [
        wrk.binary,
        f"-t{min(wrk.threads, scenario.connections)}",
        f"-c{scenario.connections}",
        f"-d{seconds}s",
        "-H",
        f"Authorization: Bearer {wrk.token}",
    ]
    for header in scenario.headers:
        command += ["-H", header]
    return [*command, url]


def run_wrk(wrk: Wrk, url: str, *, scenario: Scenario, seconds: int) -> dict[str, Any]:
    command = wrk_command(wrk, url, scenario=scenario, seconds=seconds)
    command[1:1] = ["--latency", "-s", str(wrk_script(scenario, wrk.folder))]
    result = subprocess.run(  # noqa: S603 - the wrk found on PATH
        command, capture_output=True, text=True, check=False
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("BENCH ")), None)
    if result.returncode != 0 or line is None:
        raise BenchFailed(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    numbers: dict[str, Any] = json.loads(line.removeprefix("BENCH "))
    if numbers["status"]:
        raise BenchFailed(f"{numbers['status']} answers with status >= 400 from {url}")
    if numbers["requests"] == 0:
        raise BenchFailed(f"wrk completed no request against {url}")
    return numbers


def measure(
    wrk: Wrk,
    upstream: Upstream,
    scenario: Scenario,
    target: Target,
    *,
    seconds: int,
    round_number: int,
    quiet: float,
    patience: float,
) -> Run:
    """One wrk run of ``scenario`` against ``target``, once the machine is quiet enough."""
    before = settle(quiet, patience)
    cpu_before, jiffies_before = cpu_seconds(target.pids), machine_jiffies()
    numbers = run_wrk(wrk, target.base + scenario.path, scenario=scenario, seconds=seconds)
    cpu_after, jiffies_after = cpu_seconds(target.pids), machine_jiffies()
    after = background_busy()
    requests = numbers["requests"]
    return Run(
        upstream=upstream.key,
        scenario=scenario.key,
        target=target.name,
        round=round_number,
        rps=requests / (numbers["duration_us"] / 1e6),
        p50_ms=numbers["p50_us"] / 1000,
        p90_ms=numbers["p90_us"] / 1000,
        p99_ms=numbers["p99_us"] / 1000,
        socket_errors=sum(numbers[k] for k in ("connect", "read", "write", "timeout")),
        cpu_us_per_request=(cpu_after - cpu_before) / requests * 1e6,
        background=max(before, after),
        busy=busy_between(jiffies_before, jiffies_after),
        curve_ms=tuple(us / 1000 for us in numbers["curve_us"]),
    )


def aggregate(runs: Sequence[Run]) -> Aggregate:
    return Aggregate(
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        cpu_us_per_request=statistics.median(r.cpu_us_per_request for r in runs),
    )
