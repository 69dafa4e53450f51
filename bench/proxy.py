"""What the /rest mount costs: PostgREST direct against PostgREST through the gateway.

    uv run python bench/proxy.py [--duration 10] [--connections 32]

Run it from the repository root. It needs `wrk` (Debian: `apt-get install wrk`), PostgreSQL (the
server at GATEWAY_TEST_DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/postgres, or
else the server binaries for a throwaway cluster) and the PostgREST 12.0.2 binary the tests use
(downloaded once into .cache/). Everything it creates (a database, three roles, a keystore,
PostgREST and `gateway serve` processes) is removed at the end, on error and on Ctrl-C too.
On a quiet machine the defaults take about 13 minutes and `--duration 4` about 7, plus up to
--patience seconds per run while other work keeps the machine busy (see --quiet).

What it does:

1. A fresh database, bootstrapped as tests/e2e/conftest.py does it: `gateway db upgrade`,
   `gateway keys init`, `gateway postgrest bootstrap --example`, an organization, a user, and 100
   rows in `public.projects` for that organization.
2. Per upstream configuration (PostgREST as compose.yaml runs it, and the same with PostgREST's
   JWT cache on): the real PostgREST, and two real `gateway serve` (one Granian worker each) in
   front of it, at GATEWAY_LOG_LEVEL=warning and at the default `info` (a log line per request).
3. One sign-in through the gateway (`POST /auth/login`); every request carries that token.
4. Per upstream and scenario, a warm-up, then --rounds rounds of wrk against PostgREST direct,
   gateway (warning) and gateway (info), interleaved and in alternating order so that drift hits
   all three alike. Medians over the rounds are reported, with the CPU time each process used.
5. A markdown table on stdout and in docs/benchmarks.md (overwritten; --no-write leaves it).
6. With --profile SECONDS: py-spy (`python3 -m pip install --target /tmp/pyspy py-spy`, found on
   PATH or in /tmp/pyspy/bin, or given with --py-spy) samples the gateway under the single-row
   load; the report gets the top costs.

This is a script, not a test: pytest never collects it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from bench import tokens as token_bench  # noqa: E402
from bench.logins import LoginFailed, LoginStats, sign_in_for  # noqa: E402
from bench.nginx import NginxDidNotStart, nginx_binary, nginx_version, run_nginx  # noqa: E402
from bench.plot import PERCENTILES, Panel, plot_available, write_png  # noqa: E402
from tests.support.postgres import (  # noqa: E402
    PostgresMissing,
    fresh_database,
    postgres_admin_url,
)
from tests.support.postgrest import (  # noqa: E402
    POSTGREST_VERSION,
    PostgREST,
    PostgRESTMissing,
    postgrest_binary,
    run_postgrest,
)
from tests.support.server import GatewayDidNotStart, run_gateway  # noqa: E402

REPORT = REPO_ROOT / "docs" / "benchmarks.md"
PLOT = REPO_ROOT / "docs" / "benchmarks.png"
PASSWORD = "correct horse battery"  # noqa: S105 - a throwaway account in a throwaway database
EMAIL = "bench@example.com"
ROWS = 100
TARGET_RATIO = 0.90
TARGET_ADDED_P50_MS = 1.0
TARGET_STORM_P99 = 2.0
PROFILE_RATE = 200
CLK_TCK = os.sysconf("SC_CLK_TCK")
GIT_STATUS = ("git", "status", "--porcelain", "--untracked-files=no")

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


class BenchFailed(Exception):
    pass


def step(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- processes and CPU time --------------------------------------------------------------------


def child_pids(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def process_tree(pid: int) -> list[int]:
    tree = [pid]
    for child in child_pids(pid):
        tree += process_tree(child)
    return tree


def gateway_pid(base_url: str) -> int:
    """The ``gateway serve`` process (our child) listening on this URL's port."""
    port = base_url.rsplit(":", 1)[1]
    for pid in child_pids(os.getpid()):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"GATEWAY_PORT={port}".encode() in environ:
            return pid
    raise BenchFailed(f"no gateway process of ours listens on port {port}")


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


# --- the stack ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """One way of running PostgREST; each gets its own PostgREST and its own gateways."""

    key: str
    title: str
    config: dict[str, str]


# PostgREST's own defaults, as compose.yaml runs it (the test helper's are db-pool 2 and
# log-level info). Without jwt-cache-max-lifetime, PostgREST 12 checks the token's signature on
# every request.
COMPOSE_CONFIG = {"db-pool": "10", "log-level": "error"}
UPSTREAMS = {
    "compose": Upstream("compose", "PostgREST as compose.yaml runs it", COMPOSE_CONFIG),
    "jwt-cache": Upstream(
        "jwt-cache",
        "PostgREST with `jwt-cache-max-lifetime = 3600`",
        {**COMPOSE_CONFIG, "jwt-cache-max-lifetime": "3600"},
    ),
}
LEVELS = ("warning", "info")
NGINX = "nginx"


@dataclass(frozen=True)
class Target:
    name: str
    base: str
    """URL prefix of the scenario paths: PostgREST's root, or the gateway's ``/rest``."""
    pids: tuple[int, ...]
    """The processes whose CPU time the run is charged with."""


@dataclass(frozen=True)
class Deployment:
    upstream: Upstream
    postgrest: PostgREST
    gateways: dict[str, str]
    """Log level → the base URL of a gateway in front of this PostgREST."""
    nginx: tuple[str, int] | None
    """nginx in front of this PostgREST (base URL, master pid), when nginx is installed."""

    def targets(self) -> dict[str, Target]:
        found = {"direct": Target("direct", self.postgrest.url, (self.postgrest.process.pid,))}
        for level, url in self.gateways.items():
            name = f"gateway ({level})"
            found[name] = Target(name, f"{url}/rest", tuple(process_tree(gateway_pid(url))))
        if self.nginx is not None:
            url, pid = self.nginx
            found[NGINX] = Target(NGINX, f"{url}/rest", tuple(process_tree(pid)))
        return found


@dataclass(frozen=True)
class Stack:
    deployments: list[Deployment]
    token: str
    row_id: int
    organization_id: int
    database_url: str
    postgres_version: str
    workdir: Path


def gateway_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """``gateway ARGS`` in this process (one import, not one per command); returns stdout.

    ``running_stack`` has removed the caller's GATEWAY_* variables and moved into a folder
    without a ``.env``, so exactly ``env`` is in effect.
    """
    from click.testing import CliRunner

    from gateway.cli import cli

    result = CliRunner().invoke(cli, list(args), input=stdin, env=env)
    if result.exit_code != 0:
        raise BenchFailed(f"gateway {' '.join(args)} failed:\n{result.stderr or result.output}")
    return result.stdout


def fetch(url: str, statement: str, *args: Any) -> list[Any]:
    async def run() -> list[Any]:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            return list(await connection.fetch(statement, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


def drop_roles(admin_url: str, roles: Sequence[str]) -> None:
    for role in roles:
        try:
            fetch(admin_url, f'DROP ROLE IF EXISTS "{role}"')
        except (OSError, asyncpg.PostgresError) as exc:
            print(f"bench: could not drop role {role}: {exc}", file=sys.stderr)


@contextmanager
def running_stack(
    stack: ExitStack, upstreams: Sequence[Upstream], nginx: str | None
) -> Iterator[Stack]:
    """Database, roles, keys, and per upstream a PostgREST, two gateways and (with ``nginx``)
    an nginx; removed on exit."""
    suffix = secrets.token_hex(4)
    anon, member, authenticator = (f"bench_{n}_{suffix}" for n in ("anon", "member", "auth"))
    binary = postgrest_binary()  # first: it may have to be downloaded
    admin_url = stack.enter_context(postgres_admin_url())
    # Registered before the database: roles can only go once the database that uses them has.
    stack.callback(drop_roles, admin_url, (anon, member, authenticator))
    url = stack.enter_context(fresh_database(admin_url, f"gw_bench_{suffix}"))
    workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-bench-")))
    # The CLI runs in this process: none of the caller's settings (GATEWAY_* variables, a .env
    # in the working folder) may join the ones below. GATEWAY_TEST_* are the test helpers' own.
    for name in [n for n in os.environ if n.startswith("GATEWAY_")]:
        if not name.startswith("GATEWAY_TEST_"):
            del os.environ[name]
    stack.callback(os.chdir, Path.cwd())
    os.chdir(workdir)
    keys_dir = workdir / "keys"
    authenticator_password = secrets.token_hex(16)
    env = {
        "GATEWAY_DATABASE_URL": url.replace("postgresql://", "postgresql+asyncpg://", 1),
        "GATEWAY_KEYS_DIR": str(keys_dir),
        "GATEWAY_ANON_ROLE": anon,
        "GATEWAY_AUTHENTICATOR_ROLE": authenticator,
        "GATEWAY_ALLOWED_ROLES": member,
        "GATEWAY_AUTHENTICATED_ROLE": member,
        "GATEWAY_COOKIE_SECURE": "false",
        "GATEWAY_ACCESS_TOKEN_TTL": "86400",
    }
    step("bootstrapping the database (db upgrade, keys init, postgrest bootstrap --example)")
    gateway_cli(env, "db", "upgrade")
    gateway_cli(env, "keys", "init")
    gateway_cli(
        env,
        *("postgrest", "bootstrap", "--example", "--authenticator-password-stdin"),
        stdin=authenticator_password + "\n",
    )
    org = json.loads(gateway_cli(env, "orgs", "create", "Bench", "--json"))
    org_id = int(org["organization_id"])
    gateway_cli(
        env,
        *("users", "create", EMAIL, "--password-stdin", "--org", str(org_id)),
        *("--org-role", "org_admin"),
        stdin=PASSWORD + "\n",
    )
    rows = fetch(
        url,
        "INSERT INTO public.projects (organization_id, name) "
        "SELECT $1, 'project ' || n FROM generate_series(1, $2) AS n RETURNING id",
        org_id,
        ROWS,
    )
    row_id = int(rows[ROWS // 2]["id"])
    postgres_version = str(fetch(url, "SHOW server_version")[0][0])

    authenticator_url = url.replace(
        "postgresql://postgres@", f"postgresql://{authenticator}:{authenticator_password}@", 1
    )
    if authenticator_url == url:
        raise BenchFailed(f"expected an admin URL of the form postgresql://postgres@…, got {url}")
    deployments = []
    for upstream in upstreams:
        step(f"starting {upstream.title}, and gateways at log levels {', '.join(LEVELS)}")
        postgrest = stack.enter_context(
            run_postgrest(
                db_uri=authenticator_url,
                jwt_secret=f"@{keys_dir / 'jwks.json'}",
                anon_role=anon,
                extra_config=upstream.config,
                binary=binary,
            )
        )
        gateways = {
            level: stack.enter_context(
                run_gateway(
                    {
                        **env,
                        "GATEWAY_UPSTREAM_URL": postgrest.url,
                        "GATEWAY_AUTH_RATE_LIMIT": "1000000",
                        "GATEWAY_LOG_LEVEL": level,
                        "GATEWAY_WORKERS": "1",
                    },
                    workdir,
                )
            )
            for level in LEVELS
        }
        proxy = None
        if nginx is not None:
            proxy = stack.enter_context(
                run_nginx(nginx, postgrest.url, workdir / f"nginx-{upstream.key}")
            )
        deployments.append(Deployment(upstream, postgrest, gateways, proxy))
    answer = httpx.post(
        f"{deployments[0].gateways[LEVELS[0]]}/auth/login",
        json={"email": EMAIL, "password": PASSWORD},
        timeout=30,
    )
    if answer.status_code != 200:
        raise BenchFailed(f"POST /auth/login answered {answer.status_code}: {answer.text}")
    yield Stack(
        deployments=deployments,
        token=str(answer.json()["access_token"]),
        row_id=row_id,
        organization_id=org_id,
        database_url=url,
        postgres_version=postgres_version,
        workdir=workdir,
    )


# --- wrk ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    path: str
    connections: int
    headers: tuple[str, ...] = ()
    method: str = "GET"
    body: str = ""
    status: int = 200

    def script(self, folder: Path) -> Path:
        """The wrk script: the request (unless a plain GET) and the line wrk ends with."""
        path = folder / f"wrk-{self.key}.lua"
        request = ""
        if self.method != "GET":
            request = WRK_REQUEST.replace("@METHOD@", self.method).replace("@BODY@", self.body)
        path.write_text(request + WRK_DONE)
        return path


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


def wrk_version(wrk: str) -> str:
    output = subprocess.run(  # noqa: S603 - the wrk found on PATH
        [wrk, "-v"], capture_output=True, text=True, check=False
    )
    return (output.stdout or output.stderr).splitlines()[0].split(" [")[0].strip()


def wrk_command(
    wrk: str, url: str, *, token: str, scenario: Scenario, threads: int, seconds: int
) -> list[str]:
    command = [
        wrk,
        f"-t{min(threads, scenario.connections)}",
        f"-c{scenario.connections}",
        f"-d{seconds}s",
        "-H",
        f"Authorization: Bearer {token}",
    ]
    for header in scenario.headers:
        command += ["-H", header]
    return [*command, url]


def run_wrk(
    wrk: str, folder: Path, url: str, *, token: str, scenario: Scenario, threads: int, seconds: int
) -> dict[str, Any]:
    command = wrk_command(
        wrk, url, token=token, scenario=scenario, threads=threads, seconds=seconds
    )
    command[1:1] = ["--latency", "-s", str(scenario.script(folder))]
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
    wrk: str,
    folder: Path,
    upstream: Upstream,
    scenario: Scenario,
    target: Target,
    *,
    token: str,
    threads: int,
    seconds: int,
    round_number: int,
    quiet: float,
    patience: float,
) -> Run:
    before = settle(quiet, patience)
    cpu_before, jiffies_before = cpu_seconds(target.pids), machine_jiffies()
    numbers = run_wrk(
        wrk,
        folder,
        target.base + scenario.path,
        token=token,
        scenario=scenario,
        threads=threads,
        seconds=seconds,
    )
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


INSERTED = "bench insert"


def remove_inserted(stack: Stack) -> None:
    """The insert scenario's rows go again, so the 100-row list stays 100 rows, and so do their
    dead tuples: a scan of the bloated table made the next upstream's list a third as fast."""
    fetch(stack.database_url, "DELETE FROM public.projects WHERE name = $1", INSERTED)
    fetch(stack.database_url, "VACUUM ANALYZE public.projects")


def check_answers(stack: Stack, scenarios: Sequence[Scenario]) -> None:
    """Direct and via every proxy, each scenario gets its status and the same rows."""
    for scenario in scenarios:
        headers = {"Authorization": f"Bearer {stack.token}"}
        for header in scenario.headers:
            name, _, value = header.partition(":")
            headers[name.strip()] = value.strip()
        answers = []
        for deployment in stack.deployments:
            for target in deployment.targets().values():
                url = target.base + scenario.path
                if scenario.method == "GET":
                    answer = httpx.get(url, headers=headers, timeout=10)
                else:
                    headers["Content-Type"] = "application/json"
                    answer = httpx.request(
                        scenario.method, url, headers=headers, content=scenario.body, timeout=10
                    )
                if answer.status_code != scenario.status:
                    raise BenchFailed(
                        f"{scenario.method} {url}: {answer.status_code} {answer.text[:300]}"
                    )
                if scenario.method == "GET":
                    answers.append((answer.json(), answer.headers.get("content-range")))
        if scenario.method != "GET":
            remove_inserted(stack)
            continue
        if any(answer != answers[0] for answer in answers):
            raise BenchFailed(f"{scenario.title}: the answers through the proxies differ")
        rows, content_range = answers[0]
        expected = 1 if "id=eq." in scenario.path else ROWS
        if not isinstance(rows, list) or len(rows) != expected:
            raise BenchFailed(f"{scenario.title}: expected {expected} rows, got {rows!r:.200}")
        if scenario.headers and content_range != f"0-{ROWS - 1}/{ROWS}":
            raise BenchFailed(f"{scenario.title}: Content-Range is {content_range}")


# --- profile -----------------------------------------------------------------------------------


def find_py_spy(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    found = shutil.which("py-spy")
    if found:
        return found
    candidate = Path("/tmp/pyspy/bin/py-spy")  # noqa: S108 - where the docs say to install it
    return str(candidate) if candidate.exists() else None


# Paths as short_frame() spells them: relative to site-packages, the repository or the stdlib.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("gateway/proxy/", "gateway: the /rest mount (gateway/proxy)"),
    ("gateway/front_door", "gateway: the server's dispatch (gateway/web/front_door.py)"),
    ("gateway/client_address", "gateway: client address (gateway/asgi/client_address.py)"),
    ("gateway/request_log", "gateway: RequestLog middleware"),
    ("gateway/", "gateway: other"),
    ("aiohttp/", "aiohttp: the upstream HTTP client"),
    ("yarl/", "yarl, multidict (URLs, header dicts)"),
    ("multidict/", "yarl, multidict (URLs, header dicts)"),
    ("litestar/", "Litestar: app, middleware stack, routing"),
    ("granian/", "Granian: the Python side of its ASGI bridge, and the event loop"),
    ("ipaddress.py", "stdlib ipaddress"),
    ("logging/", "stdlib logging"),
    ("asyncio/", "asyncio"),
    ("secrets.py", "stdlib secrets, random (request ids)"),
    ("random.py", "stdlib secrets, random (request ids)"),
    ("jwt/", "token verification (PyJWT, cryptography)"),
    ("cryptography/", "token verification (PyJWT, cryptography)"),
)


def category(short: str) -> str:
    path = short.rpartition(" (")[2]
    for prefix, name in CATEGORIES:
        if path.startswith(prefix):
            return name
    return f"other ({path.rstrip(')')})"


def short_frame(frame: str) -> str:
    """``f (aiohttp/client.py)`` out of py-spy's ``f (/…/site-packages/aiohttp/client.py:12)``."""
    match = re.match(r"^(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame
    name, path = match.groups()
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    elif path.startswith(str(REPO_ROOT) + "/"):
        path = path[len(str(REPO_ROOT)) + 1 :]
    elif re.search(r"/lib/python3\.\d+/", path):
        path = re.split(r"/lib/python3\.\d+/", path, maxsplit=1)[1]
    return f"{name} ({path})"


PROXY_PATH_FILES = ("gateway/", "aiohttp/", "litestar/", "granian/asgi", "ipaddress.py")


@dataclass(frozen=True)
class Profile:
    samples: int
    possible: int
    self_top: list[tuple[str, int]]
    inclusive_top: list[tuple[str, int]]
    categories: list[tuple[str, int]]
    inclusive: dict[str, int]

    def share(self, *, category_name: str = "", function: str = "") -> float:
        """Share of the samples in a category (by name) or inside a function (by prefix)."""
        if category_name:
            count = dict(self.categories).get(category_name, 0)
        else:
            count = sum(n for name, n in self.inclusive.items() if name.startswith(function))
        return count / max(1, self.samples)


def parse_collapsed(text: str, possible: int, top: int = 15) -> Profile:
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        # --subprocesses prefixes "process N:…" frames; they are not code.
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += count
        leaf = short_frame(frames[-1])
        self_counts[leaf] += count
        categories[category(leaf)] += count
        for name in {short_frame(f) for f in frames}:
            inclusive[name] += count
    proxy_path = [
        (name, n)
        for name, n in inclusive.most_common()
        if any(f"({p}" in name for p in PROXY_PATH_FILES)
        and not name.startswith("<module>")
        and "gateway/cli" not in name
        and "granian/server" not in name
    ]
    return Profile(
        samples=samples,
        possible=possible,
        self_top=self_counts.most_common(top),
        inclusive_top=proxy_path[:top],
        categories=categories.most_common(),
        inclusive=dict(inclusive),
    )


def take_profile(
    py_spy: str, wrk: str, stack: Stack, scenario: Scenario, *, threads: int, seconds: int
) -> Profile:
    """py-spy on the gateway (warning) in front of the last upstream, under ``scenario``."""
    deployment = stack.deployments[-1]
    base = deployment.gateways["warning"]
    output = stack.workdir / "profile.txt"
    load = subprocess.Popen(  # noqa: S603 - the wrk found on PATH
        wrk_command(
            wrk,
            f"{base}/rest{scenario.path}",
            token=stack.token,
            scenario=scenario,
            threads=threads,
            seconds=seconds + 3,
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1)
        result = subprocess.run(  # noqa: S603 - py-spy as found or given
            [
                py_spy,
                *("record", "--pid", str(gateway_pid(base)), "--subprocesses"),
                # Only the thread holding the GIL: idle pool threads are not work, and py-spy's
                # idle detection alone counts some of them.
                *("--gil", "--function", "--full-filenames", "--rate", str(PROFILE_RATE)),
                *("--duration", str(seconds), "--format", "raw", "--output", str(output)),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        load.wait(timeout=seconds + 30)
    if result.returncode != 0 or not output.exists():
        raise BenchFailed(f"py-spy failed ({result.returncode}): {result.stderr.strip()[-800:]}")
    return parse_collapsed(output.read_text(), possible=PROFILE_RATE * seconds)


# --- report ------------------------------------------------------------------------------------


def ms(value: float) -> str:
    return f"{value:.2f}"


@dataclass(frozen=True)
class Machine:
    nproc: int
    cpu_model: str
    memory: str
    python: str
    kernel: str
    versions: str


def machine(stack: Stack, wrk: str, nginx: str | None) -> Machine:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    memory = "unknown"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    versions = ", ".join(
        [
            f"PostgREST {POSTGREST_VERSION}",
            f"PostgreSQL {stack.postgres_version}",
            f"Granian {version('granian')}",
            f"Litestar {version('litestar')}",
            f"aiohttp {version('aiohttp')}",
            wrk_version(wrk),
            f"nginx {nginx_version(nginx)}" if nginx else "nginx not installed",
        ]
    )
    return Machine(
        nproc=len(os.sched_getaffinity(0)),
        cpu_model=model,
        memory=memory,
        python=platform.python_version(),
        kernel=platform.release(),
        versions=versions,
    )


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            check=True,
        ).stdout.strip()
        # The report and plot of an earlier run are not the code being measured.
        dirty = subprocess.run(  # noqa: S603 - git with fixed arguments
            [*GIT_STATUS, "--", ".", ":!docs/benchmarks.md", ":!docs/benchmarks.png"],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} (with uncommitted changes)" if dirty else head


Results = dict[tuple[str, str, str], Aggregate]
"""(upstream, scenario, target) → medians."""


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


def findings(profile: Profile | None, reference: Aggregate | None, results: Results) -> list[str]:
    """What the numbers point at, computed from this run (so they stay true when code changes)."""
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
    if profile is None:
        return lines
    aiohttp = profile.share(category_name="aiohttp: the upstream HTTP client")
    send = profile.share(function="StreamWriter._write (aiohttp/")
    lines.append(
        f"- **aiohttp**, the upstream client, holds {aiohttp:.0%} of the GIL time (innermost "
        f"frames); {send:.0%} is `StreamWriter._write`, where the request goes out with a "
        "`send()` on the loopback socket (the kernel runs the receiving side's TCP work in "
        "that call too)."
    )
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


def render(outcome: Outcome, plot: str | None) -> str:
    args, box = outcome.args, outcome.box
    titles = {s.key: s.title for s in outcome.scenarios}
    titles.update({u.key: u.title for u in outcome.upstreams})
    titles["storm"] = outcome.storm.scenario.title
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
        "# Benchmark: PostgREST direct, through the gateway, through nginx",
        "",
        "Written by `bench/proxy.py`; to measure again (and replace this file and "
        "docs/benchmarks.png), from the repository root:",
        "",
        "```sh",
        "uv run --group bench python bench/proxy.py [--duration 10] [--connections 32] "
        "[--profile 8]",
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
        "## Proxying",
        "",
        f"Measured {outcome.started:%Y-%m-%d %H:%M} UTC at commit {outcome.revision} with "
        f"`uv run --group bench python bench/proxy.py {options_of(args)}` "
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
        lines += [
            f"![Latency by percentile, per scenario and target]({plot})",
            "",
            "Latency by percentile (log scale; each *nine* gets the same width) of the round "
            "with the median throughput of each target.",
            "",
        ]
    else:
        lines += ["No plot: matplotlib is missing (run with `uv run --group bench`).", ""]
    lines += [
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
    notes = findings(outcome.profile, outcome.reference, outcome.results)
    if notes:
        at = lines.index("### Against the targets")
        lines[at:at] = ["### What the numbers point at", "", *notes, ""]
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="PostgREST direct against PostgREST through the gateway's /rest mount."
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per target (3)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per target (3)")
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
        default=20,
        metavar="SECONDS",
        help="but no longer than this (20)",
    )
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
    args = parser.parse_args(argv)
    unknown = set(args.upstreams.split(",")) - set(UPSTREAMS)
    if unknown:
        parser.error(f"unknown upstream {', '.join(sorted(unknown))}")
    counts = ("duration", "warmup", "rounds", "connections", "threads", "login_clients",
              "storm_logins", "storm_connections")  # fmt: skip
    small = [f"--{name.replace('_', '-')}" for name in counts if getattr(args, name) < 1]
    if small:
        parser.error(f"{', '.join(small)} must be ≥ 1")
    return args


def terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def scenarios_for(args: argparse.Namespace, stack: Stack) -> list[Scenario]:
    one_row = f"/projects?id=eq.{stack.row_id}"
    insert = json.dumps({"organization_id": stack.organization_id, "name": INSERTED})
    return [
        Scenario("one", "1 row", one_row, args.connections),
        Scenario(
            "list",
            "100 rows, `Prefer: count=exact`",
            "/projects?select=*&order=id",
            args.connections,
            ("Prefer: count=exact",),
        ),
        # Last: the rows it adds are removed after it, before the next upstream's list.
        Scenario(
            "insert",
            "insert 1 row",
            "/projects",
            args.connections,
            ("Prefer: return=minimal",),
            method="POST",
            body=insert,
            status=201,
        ),
        Scenario("one-c1", "1 row, 1 connection", one_row, 1),
    ]


def proxy_runs(
    args: argparse.Namespace, wrk: str, stack: Stack, scenarios: Sequence[Scenario]
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
                run_wrk(
                    wrk,
                    stack.workdir,
                    target.base + scenario.path,
                    token=stack.token,
                    scenario=scenario,
                    threads=args.threads,
                    seconds=args.warmup,
                )
            per_target: dict[str, list[Run]] = {name: [] for name in targets}
            for number in range(1, args.rounds + 1):
                order = list(targets) if number % 2 else list(reversed(targets))
                for name in order:
                    run = measure(
                        wrk,
                        stack.workdir,
                        upstream,
                        scenario,
                        targets[name],
                        token=stack.token,
                        threads=args.threads,
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
                remove_inserted(stack)
            for name, target_runs in per_target.items():
                results[(upstream.key, scenario.key, name)] = aggregate(target_runs)
    return runs, results


@dataclass(frozen=True)
class SignIns:
    stats: LoginStats
    cpu_ms_per_login: float


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


@dataclass(frozen=True)
class Storm:
    scenario: Scenario
    idle: list[Run]
    storm: list[Run]
    logins: list[LoginStats]


def login_storm(args: argparse.Namespace, wrk: str, stack: Stack, one_row: str) -> Storm:
    """The single-row GET through the gateway (warning), alone and beside a login storm."""
    deployment = stack.deployments[-1]
    name = "gateway (warning)"
    target = deployment.targets()[name]
    beside_storm = dataclasses.replace(target, name=f"{name} beside the login storm")
    scenario = Scenario(
        "storm", f"1 row, {args.storm_connections} connections", one_row, args.storm_connections
    )
    run = functools.partial(
        measure,
        wrk,
        stack.workdir,
        deployment.upstream,
        scenario,
        token=stack.token,
        threads=args.threads,
        seconds=args.duration,
        quiet=args.quiet / 100,
    )
    idle: list[Run] = []
    storm: list[Run] = []
    logins: list[LoginStats] = []
    for number in range(1, args.rounds + 1):
        idle.append(run(target, round_number=number, patience=args.patience))
        outcome: dict[str, LoginStats | BaseException] = {}

        def storm_of_logins(outcome: dict[str, LoginStats | BaseException] = outcome) -> None:
            try:
                outcome["stats"] = sign_in_for(
                    deployment.gateways["warning"],
                    EMAIL,
                    PASSWORD,
                    clients=args.storm_logins,
                    seconds=args.duration + 1.5,
                )
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                outcome["error"] = exc

        thread = threading.Thread(target=storm_of_logins, daemon=True)
        thread.start()
        time.sleep(0.5)
        # No waiting for a quiet machine: the storm is the point.
        storm.append(run(beside_storm, round_number=number, patience=0))
        thread.join(timeout=args.duration + 60)
        if "error" in outcome:
            raise BenchFailed(f"the login storm failed: {outcome['error']}")
        stats = outcome["stats"]
        assert isinstance(stats, LoginStats)
        logins.append(stats)
        step(
            f"login storm, round {number}: p99 {ms(idle[-1].p99_ms)} ms alone, "
            f"{ms(storm[-1].p99_ms)} ms beside {stats.per_second:,.1f} sign-ins/s"
        )
    return Storm(scenario, idle, storm, logins)


def benchmark(args: argparse.Namespace, wrk: str) -> Outcome:
    started = datetime.now(UTC)
    revision = git_revision()
    clock = time.monotonic()
    upstreams = [UPSTREAMS[key] for key in args.upstreams.split(",")]
    nginx = None if args.no_nginx else nginx_binary()
    with ExitStack() as stack:
        running = stack.enter_context(running_stack(stack, upstreams, nginx))
        scenarios = scenarios_for(args, running)
        check_answers(running, scenarios)
        targets_per_upstream = len(running.deployments[0].targets())
        total = len(upstreams) * len(scenarios) * targets_per_upstream
        seconds = total * (args.rounds * (args.duration + 1) + args.warmup)
        seconds += args.rounds * (args.duration + 2) * 4 + args.duration * 2 + 30
        step(
            f"{total * args.rounds} runs of {args.duration} s and {total} warm-ups of "
            f"{args.warmup} s, then sign-ins, a login storm and tokens: about "
            f"{seconds / 60:.0f} minutes"
        )
        runs, results = proxy_runs(args, wrk, running, scenarios)

        # The floor: the gateway answering on its own, nothing proxied.
        last = running.deployments[-1]
        base = last.gateways["warning"]
        floor = Target("gateway (warning)", base, tuple(process_tree(gateway_pid(base))))
        healthz = Scenario("healthz", "`GET /healthz`", "/healthz", args.connections)
        step("the gateway alone: GET /healthz")
        reference_runs = [
            measure(
                wrk,
                running.workdir,
                last.upstream,
                healthz,
                floor,
                token=running.token,
                threads=args.threads,
                seconds=args.duration,
                round_number=number,
                quiet=args.quiet / 100,
                patience=args.patience,
            )
            for number in range(1, args.rounds + 1)
        ]
        reference = aggregate(reference_runs)

        step("sign-ins")
        logins = sign_ins(args, running)
        step("the single-row GET through the gateway beside a login storm")
        storm = login_storm(args, wrk, running, scenarios[0].path)
        step("token signing and verification, in this process")
        token_rates = token_bench.measure(seconds=2.0)

        profile: Profile | None = None
        profile_note = "Not taken (run with `--profile 8`)."
        if args.profile:
            py_spy = find_py_spy(args.py_spy)
            if py_spy is None:
                profile_note = (
                    "Not taken: py-spy was not found (`python3 -m pip install --target "
                    "/tmp/pyspy py-spy`, or --py-spy PATH)."
                )
            else:
                step(f"profiling the gateway with py-spy for {args.profile} s")
                try:
                    profile = take_profile(
                        py_spy,
                        wrk,
                        running,
                        scenarios[0],
                        threads=args.threads,
                        seconds=args.profile,
                    )
                except BenchFailed as exc:
                    profile_note = f"Not taken: {exc}"
        box = machine(running, wrk, nginx)
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
    plot = None
    if not args.no_write and plot_available():
        write_png(panels_of(outcome), PLOT, title=f"Latency by percentile ({outcome.box.cpu_model}"
                  f", {outcome.box.nproc} cores, {outcome.started:%Y-%m-%d})")  # fmt: skip
        plot = PLOT.name
        step(f"wrote {PLOT.relative_to(REPO_ROOT)}")
    report = render(outcome, plot)
    print(report)
    if not args.no_write:
        REPORT.write_text(report)
        step(f"wrote {REPORT.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
