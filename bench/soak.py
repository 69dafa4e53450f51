"""Soak test: mixed traffic through a real gateway and PostgREST for a bounded time.

    uv run python bench/soak.py [--minutes 10] [--clients 8] [--connections 16] [--tokens 1000]

Run it from the repository root (``.venv/bin/python bench/soak.py`` works too). It needs what
the e2e tests need: PostgreSQL (the server at GATEWAY_TEST_DATABASE_URL, default
postgresql://postgres@127.0.0.1:5432/postgres, or else the server binaries for a throwaway
cluster) and the PostgREST 12.0.2 binary (downloaded once into .cache/). Everything it creates
(a database, three roles, a keystore, PostgREST and a `gateway serve`) is removed at the end,
on error and on Ctrl-C too.

What it does: a database bootstrapped as tests/e2e/conftest.py does it (roles, the `projects`
example, an organization, an org_admin and an org_client), the real PostgREST, one `gateway
serve` (one Granian worker) in front of it; then --tokens distinct access tokens (default
1,000: a few sign-ins, each refreshed in a chain, so no token repeats and the gateway's
verified-token cache holds them all); then --clients concurrent clients for --minutes (default
10), each picking at random: a sign-in, a refresh of its own session, a proxied read of
`/rest/projects` (with the next of the distinct tokens, round robin), or a proxied write (an
insert, then its delete; org_admin only); beside them, wrk (when installed) keeps the gateway at
full load with proxied reads on --connections connections, each request with the next of the
distinct tokens. Every answer must be the expected one: any other
status or a transport error counts as an error. Every 10 s the RSS of the Granian worker (VmRSS
in /proc/<pid>/status; the worker is a child of the `gateway serve` process) is sampled. At the
end it prints the requests by kind, the errors, the worker's RSS first/last/max, the start
against the end (medians of the first and last minute after the first minute's warm-up) and the
least-squares slope over the loaded samples, with the verdict; the report also goes to
docs/soak.md (--no-write leaves it). The exit code is 1 when any request failed.

This is a script, not a test: pytest never collects it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402

from bench.processes import process_tree  # noqa: E402
from tests.support.postgres import fresh_database, postgres_admin_url  # noqa: E402
from tests.support.postgrest import postgrest_binary, run_postgrest  # noqa: E402
from tests.support.server import gateway_process  # noqa: E402

PASSWORD = "correct horse battery"  # noqa: S105 - a throwaway account in a throwaway database
SAMPLE_EVERY = 10.0
WARM_UP = 60.0
"""Seconds of traffic before the samples that judge the trend: pools, caches and argon2id's
64 MiB per hash in flight fill up in them."""
FLAT = 0.10
"""Flat: the trend over the loaded samples grows the RSS by at most this share of the start."""
VERDICT = "Verdict: "
"""The line docs/benchmarks.md's targets table quotes (bench/proxy/report.py)."""
REPORT = REPO_ROOT / "docs" / "soak.md"
CLIENT_TIMEOUT = 30.0
# Relative weights of the kinds of traffic.
WEIGHTS = {"login": 1, "refresh": 2, "read": 10, "write": 3}
USERS = {"ada@example.com": "org_admin", "carl@example.com": "org_client"}


def cli(env: dict[str, str], cwd: Path, *args: str, stdin: str | None = None) -> str:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    full_env.update(env)
    result = subprocess.run(  # noqa: S603 - this interpreter running the gateway CLI
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        env=full_env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"gateway {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def sql(url: str, statement: str, *args: Any) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            await connection.execute(statement, *args)
        finally:
            await connection.close()

    asyncio.run(run())


@dataclass
class Stack:
    base_url: str
    serve_pid: int
    organization_id: int
    folder: Path


@contextmanager
def gateway_stack(work: Path) -> Iterator[Stack]:
    """A bootstrapped database, PostgREST and one `gateway serve`; all removed afterwards."""
    suffix = secrets.token_hex(4)
    anon, member, authenticator = (f"soak_{n}_{suffix}" for n in ("anon", "member", "auth"))
    password = secrets.token_hex(12)
    keys_dir = work / "keys"
    with ExitStack() as stack:
        admin_url = stack.enter_context(postgres_admin_url())
        url = stack.enter_context(fresh_database(admin_url, f"gw_soak_{suffix}"))
        stack.callback(
            lambda: sql(admin_url, f'DROP ROLE IF EXISTS "{anon}", "{member}", "{authenticator}"')
        )
        # Runs before the roles are dropped: the database that owns their grants goes first.
        stack.callback(
            lambda: sql(admin_url, f'DROP DATABASE IF EXISTS "gw_soak_{suffix}" WITH (FORCE)')
        )
        env = {
            "GATEWAY_DATABASE_URL": url.replace("postgresql://", "postgresql+asyncpg://"),
            "GATEWAY_KEYS_DIR": str(keys_dir),
            "GATEWAY_ALLOWED_ROLES": member,
            "GATEWAY_AUTHENTICATED_ROLE": member,
            "GATEWAY_ANON_ROLE": anon,
            "GATEWAY_AUTHENTICATOR_ROLE": authenticator,
            "GATEWAY_COOKIE_SECURE": "false",
        }
        print("setting up: database, keys, roles, accounts ...", flush=True)
        cli(env, work, "db", "upgrade")
        cli(env, work, "keys", "init")
        cli(
            env,
            work,
            "postgrest",
            "bootstrap",
            "--example",
            "--authenticator-password-stdin",
            stdin=password + "\n",
        )
        org = json.loads(cli(env, work, "orgs", "create", "Soak", "--json"))["organization_id"]
        for email, role in USERS.items():
            cli(
                env,
                work,
                "users",
                "create",
                email,
                "--password-stdin",
                "--org",
                str(org),
                "--org-role",
                role,
                stdin=PASSWORD,
            )
        sql(
            url,
            "INSERT INTO public.projects (organization_id, name) "
            "SELECT $1, 'project ' || n FROM generate_series(1, 20) AS n",
            org,
        )
        authenticator_url = url.replace(
            "postgresql://postgres@", f"postgresql://{authenticator}:{password}@"
        )
        postgrest = stack.enter_context(
            run_postgrest(
                db_uri=authenticator_url,
                jwt_secret=f"@{keys_dir / 'jwks.json'}",
                anon_role=anon,
                binary=postgrest_binary(),
            )
        )
        base_url, process = stack.enter_context(
            gateway_process(
                {
                    **env,
                    "GATEWAY_UPSTREAM_URL": postgrest.url,
                    "GATEWAY_AUTH_RATE_LIMIT": "1000000",
                    # Sign-in attempts count before the password is checked, so more than 5
                    # clients signing in to one account at once would be throttled.
                    "GATEWAY_LOGIN_MAX_FAILURES": "1000",
                    "GATEWAY_LOG_LEVEL": "warning",
                },
                work,
            )
        )
        yield Stack(base_url, process.pid, org, work)


# --- the Granian worker's memory --------------------------------------------------------------


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def find_worker(serve_pid: int) -> int:
    """The Granian worker: the descendant of `gateway serve` that holds the most memory
    (a multiprocessing resource tracker, if any, is tiny)."""
    descendants = process_tree(serve_pid)[1:]
    candidates = [pid for pid in descendants if "resource_tracker" not in cmdline(pid)]
    if not candidates:
        return serve_pid  # single-process mode: the serve process is the worker
    return max(candidates, key=lambda pid: rss_kib(pid) or 0)


# --- traffic ----------------------------------------------------------------------------------


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    samples: list[tuple[float, int]] = field(default_factory=list)

    def expect(self, kind: str, response: httpx.Response, *statuses: int) -> bool:
        self.requests[kind] += 1
        if response.status_code in statuses:
            return True
        self.fail(kind, f"{response.status_code} {response.text[:200]}")
        return False

    def fail(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.first_errors) < 10:
            self.first_errors.append(f"{kind}: {what}")


WRK_TOKENS = """
local tokens = {@TOKENS@}
local i = 0
request = function()
  i = i % #tokens + 1
  return wrk.format("GET", "@PATH@", {["Authorization"] = "Bearer " .. tokens[i]})
end
"""
READ_PATH = "/rest/projects?select=id,name&order=id"


@dataclass
class Load:
    """wrk's proxied reads beside the mixed clients: what keeps the gateway at full load."""

    command: list[str]
    process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - the wrk found on PATH
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def finish(self, tally: Tally, timeout: float) -> None:
        if self.process is None:
            return
        output, _ = self.process.communicate(timeout=timeout)
        requests = re.search(r"(\d+) requests in", output)
        tally.requests["wrk read"] += int(requests.group(1)) if requests else 0
        failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
        errors = re.search(r"Socket errors: (.*)", output)
        if self.process.returncode != 0 or failed or errors or not requests:
            tally.fail("wrk read", " ".join(output.split())[-300:])


def wrk_load(base_url: str, tokens: list[str], seconds: float, folder: Path, c: int) -> Load:
    """wrk -c ``c`` reading the projects, each request with the next of ``tokens``."""
    wrk = shutil.which("wrk")
    if wrk is None or not tokens or not c:
        return Load([])
    script = folder / "soak-tokens.lua"
    script.write_text(
        WRK_TOKENS.replace("@TOKENS@", ",".join(f'"{t}"' for t in tokens)).replace(
            "@PATH@", READ_PATH
        )
    )
    return Load([wrk, "-t1", f"-c{c}", f"-d{max(1, int(seconds))}s", "-s", str(script), base_url])


class TokenPool:
    """Distinct access tokens, handed out round robin across all clients."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.index = 0

    def __bool__(self) -> bool:
        return bool(self.tokens)

    def next(self) -> str:
        self.index = (self.index + 1) % len(self.tokens)
        return self.tokens[self.index]


async def distinct_tokens(http: httpx.AsyncClient, count: int) -> list[str]:
    """``count`` distinct access tokens: a sign-in per 100, each refreshed in a chain (a refresh
    costs no password hash, so a thousand take seconds, not minutes)."""
    tokens: list[str] = []
    while len(tokens) < count:
        email = list(USERS)[len(tokens) // 100 % len(USERS)]
        answer = await http.post("/auth/login", json={"email": email, "password": PASSWORD})
        answer.raise_for_status()
        body = answer.json()
        tokens.append(body["access_token"])
        for _ in range(min(99, count - len(tokens))):
            answer = await http.post("/auth/refresh", json={"refresh_token": body["refresh_token"]})
            answer.raise_for_status()
            body = answer.json()
            tokens.append(body["access_token"])
    if len(set(tokens)) != count:
        raise SystemExit(f"expected {count} distinct tokens, got {len(set(tokens))}")
    return tokens


class Client:
    def __init__(
        self, http: httpx.AsyncClient, email: str, tally: Tally, org: int, tokens: TokenPool
    ) -> None:
        self.tokens = tokens
        self.http = http
        self.email = email
        self.tally = tally
        self.org = org
        self.access = ""
        self.refresh_token = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}

    async def login(self) -> None:
        answer = await self.http.post(
            "/auth/login", json={"email": self.email, "password": PASSWORD}
        )
        if self.tally.expect("login", answer, 200):
            self.access = answer.json()["access_token"]
            self.refresh_token = answer.json()["refresh_token"]

    async def refresh(self) -> None:
        answer = await self.http.post("/auth/refresh", json={"refresh_token": self.refresh_token})
        if self.tally.expect("refresh", answer, 200):
            self.access = answer.json()["access_token"]
            self.refresh_token = answer.json()["refresh_token"]

    async def read(self) -> None:
        token = self.tokens.next() if self.tokens else self.access
        answer = await self.http.get(
            READ_PATH,
            headers={"Authorization": f"Bearer {token}"},
        )
        if self.tally.expect("read", answer, 200) and len(answer.json()) < 20:
            self.tally.fail("read", f"only {len(answer.json())} rows")

    async def write(self) -> None:
        name = f"soak {secrets.token_hex(6)}"
        created = await self.http.post(
            "/rest/projects",
            headers={**self.auth, "Prefer": "return=minimal"},
            json={"organization_id": self.org, "name": name},
        )
        if self.tally.expect("write", created, 201):
            deleted = await self.http.delete(f"/rest/projects?name=eq.{name}", headers=self.auth)
            self.tally.expect("write", deleted, 204)

    async def run(self, stop_at: float, rng: random.Random) -> None:
        await self.login()
        kinds = list(WEIGHTS)
        weights = list(WEIGHTS.values())
        while time.monotonic() < stop_at:
            kind = rng.choices(kinds, weights)[0]
            if kind == "write" and USERS[self.email] != "org_admin":
                kind = "read"
            try:
                await getattr(self, kind)()
            except httpx.HTTPError as exc:
                self.tally.fail(kind, f"{type(exc).__name__}: {exc}")


async def sample_rss(worker: int, tally: Tally, stop_at: float) -> None:
    started = time.monotonic()
    while True:
        rss = rss_kib(worker)
        if rss is not None:
            tally.samples.append((time.monotonic() - started, rss))
        remaining = stop_at - time.monotonic()
        if remaining <= 0:
            return
        await asyncio.sleep(min(SAMPLE_EVERY, remaining))


async def soak(
    stack: Stack, duration: float, clients: int, seed: int, tokens: int, connections: int
) -> Tally:
    tally = Tally()
    worker = find_worker(stack.serve_pid)
    rng = random.Random(seed)  # noqa: S311 - a reproducible traffic mix, not a secret
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=CLIENT_TIMEOUT, limits=limits
    ) as http:
        print(f"minting {tokens} distinct access tokens ...", flush=True)
        pool = TokenPool(await distinct_tokens(http, tokens) if tokens else [])
        load = wrk_load(stack.base_url, pool.tokens, duration, stack.folder, connections)
        print(
            f"gateway serve pid {stack.serve_pid}, Granian worker pid {worker}; "
            f"{clients} clients for {duration:g} s"
            + (f", wrk -c{connections} reads beside them" if load.command else ", no wrk"),
            flush=True,
        )
        stop_at = time.monotonic() + duration
        if load.command:
            load.start()
        emails = list(USERS)
        workers = [
            Client(http, emails[index % len(emails)], tally, stack.organization_id, pool).run(
                stop_at,
                random.Random(rng.random()),  # noqa: S311 - the traffic mix
            )
            for index in range(clients)
        ]
        await asyncio.gather(sample_rss(worker, tally, stop_at), *workers)
        await asyncio.to_thread(load.finish, tally, 60)
    return tally


def report(tally: Tally, duration: float) -> str:
    total = sum(tally.requests.values())
    lines = [
        f"duration: {duration:g} s, requests: {total} ({total / duration:.0f}/s)",
        "requests by kind: "
        + ", ".join(f"{kind} {count}" for kind, count in tally.requests.items() if count),
        f"errors: {sum(tally.errors.values())}"
        + (
            " (" + ", ".join(f"{k} {v}" for k, v in tally.errors.items()) + ")"
            if tally.errors
            else ""
        ),
    ]
    lines += [f"  {error}" for error in tally.first_errors]
    if tally.samples:
        values = [rss for _, rss in tally.samples]
        first, last = values[0], values[-1]
        lines.append(
            f"worker RSS (MiB): first {first / 1024:.1f}, last {last / 1024:.1f}, "
            f"max {max(values) / 1024:.1f}, growth {(last - first) / 1024:+.1f} "
            f"({(last - first) / first * 100:+.1f} %) over {len(values)} samples"
        )
        if len(values) > 2:
            # The first sample is taken before any traffic: argon2id alone needs 64 MiB per
            # concurrent hash. Growth after the first loaded sample is what a leak would show.
            warm = values[1]
            lines.append(
                f"growth after warm-up (from the {tally.samples[1][0]:.0f} s sample): "
                f"{(last - warm) / 1024:+.1f} MiB"
            )
        lines += trend(tally, duration)
        lines.append(
            "samples (s: MiB): "
            + ", ".join(f"{at:.0f}: {rss / 1024:.1f}" for at, rss in tally.samples)
        )
    else:
        lines.append("worker RSS: no sample (the worker process was not found)")
        lines.append(f"{VERDICT}no RSS sample | not measured")
    return "\n".join(lines)


def slope_mib_per_minute(samples: list[tuple[float, int]]) -> float:
    """The least-squares slope of RSS over time."""
    times = [at for at, _ in samples]
    values = [rss / 1024 for _, rss in samples]
    mean_t, mean_v = statistics.fmean(times), statistics.fmean(values)
    spread = sum((t - mean_t) ** 2 for t in times)
    if spread == 0:
        return 0.0
    per_second = sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True))
    return per_second / spread * 60


def trend(tally: Tally, duration: float) -> list[str]:
    """Start against end and the slope, over the samples after the warm-up; the verdict."""
    loaded = [(at, rss) for at, rss in tally.samples if at >= WARM_UP]
    if len(loaded) < 6:
        return [f"{VERDICT}too short to judge (run --minutes 10) | not measured"]
    minute = max(3, int(60 / SAMPLE_EVERY))
    start = statistics.median(rss for _, rss in loaded[:minute]) / 1024
    end = statistics.median(rss for _, rss in loaded[-minute:]) / 1024
    slope = slope_mib_per_minute(loaded)
    minutes = (loaded[-1][0] - loaded[0][0]) / 60
    flat = slope * minutes <= FLAT * start
    return [
        f"after the {WARM_UP:g} s warm-up: start {start:.1f} MiB, end {end:.1f} MiB (medians of "
        f"the first and last {minute} samples), slope {slope:+.2f} MiB/min over "
        f"{len(loaded)} samples ({slope * minutes:+.1f} MiB over {minutes:.1f} min)",
        f"{VERDICT}slope {slope:+.2f} MiB/min, start {start:.0f} MiB, end {end:.0f} MiB, "
        f"{duration / 60:.0f} min | {'**met**' if flat else '**not met**'}",
    ]


def markdown(text: str, options: argparse.Namespace, revision: str) -> str:
    verdict = next(line for line in text.splitlines() if line.startswith(VERDICT))
    return "\n".join(
        [
            "# Soak run",
            "",
            f"Written by `uv run python bench/soak.py --minutes {options.minutes:g} --clients "
            f"{options.clients} --connections {options.connections} --tokens {options.tokens}` "
            f"at commit {revision}, "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, on {os.cpu_count()} cores (see the "
            "script's docstring for the traffic). Memory is *flat* when the least-squares "
            f"trend of the worker's RSS after the first {WARM_UP:g} s grows it by at most "
            f"{FLAT:.0%} of its start over the run; sign-ins make it swing (argon2id takes "
            "64 MiB per hash in flight), so single samples say little.",
            "",
            verdict.removeprefix(VERDICT).replace(" | ", ": ").replace("**", ""),
            "",
            "```text",
            text,
            "```",
            "",
        ]
    )


def git_revision() -> str:
    result = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes (default 10)")
    parser.add_argument(
        "--clients", type=int, default=8, help="concurrent mixed clients (default 8)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=16,
        help="wrk connections reading beside them, with the distinct tokens (16; 0: no wrk)",
    )
    parser.add_argument(
        "--tokens", type=int, default=1000, help="distinct access tokens (default 1000)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the traffic mix")
    parser.add_argument("--no-write", action="store_true", help="leave docs/soak.md as it is")
    options = parser.parse_args()
    duration = options.minutes * 60
    revision = git_revision()
    with ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-soak-"))
        served = stack.enter_context(gateway_stack(Path(folder)))
        tally = asyncio.run(
            soak(
                served, duration, options.clients, options.seed, options.tokens, options.connections
            )
        )
    text = report(tally, duration)
    print(text)
    if not options.no_write:
        REPORT.write_text(markdown(text, options, revision))
        print(f"wrote {REPORT.relative_to(REPO_ROOT)}")
    return 1 if tally.errors else 0


if __name__ == "__main__":
    sys.exit(main())
