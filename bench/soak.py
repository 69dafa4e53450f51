"""Soak test: mixed traffic through a real gateway and PostgREST for a bounded time.

    uv run python bench/soak.py [--duration 300] [--clients 8]

Run it from the repository root (``.venv/bin/python bench/soak.py`` works too). It needs what
the e2e tests need: PostgreSQL (the server at GATEWAY_TEST_DATABASE_URL, default
postgresql://postgres@127.0.0.1:5432/postgres, or else the server binaries for a throwaway
cluster) and the PostgREST 12.0.2 binary (downloaded once into .cache/). Everything it creates
(a database, three roles, a keystore, PostgREST and a `gateway serve`) is removed at the end,
on error and on Ctrl-C too.

What it does: a database bootstrapped as tests/e2e/conftest.py does it (roles, the `projects`
example, an organization, an org_admin and an org_client), the real PostgREST, one `gateway
serve` (one Granian worker) in front of it; then --clients concurrent clients for --duration
seconds (default 5 minutes), each picking at random: a sign-in, a refresh of its own session, a
proxied read of `/rest/projects`, or a proxied write (an insert, then its delete; org_admin
only). Every answer must be the expected one: any other status or a transport error counts as
an error. Every 10 s the RSS of the Granian worker (VmRSS in /proc/<pid>/status; the worker is a
child of the `gateway serve` process) is sampled. At the end it prints the requests by kind,
the errors, and the worker's RSS first/last/max and growth; the exit code is 1 when any request
failed.

This is a script, not a test: pytest never collects it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
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
                    "GATEWAY_LOG_LEVEL": "warning",
                },
                work,
            )
        )
        yield Stack(base_url, process.pid, org)


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


class Client:
    def __init__(self, http: httpx.AsyncClient, email: str, tally: Tally, org: int) -> None:
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
        answer = await self.http.get("/rest/projects?select=id,name&order=id", headers=self.auth)
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


async def soak(stack: Stack, duration: float, clients: int, seed: int) -> Tally:
    tally = Tally()
    worker = find_worker(stack.serve_pid)
    print(
        f"gateway serve pid {stack.serve_pid}, Granian worker pid {worker}; "
        f"{clients} clients for {duration:g} s",
        flush=True,
    )
    stop_at = time.monotonic() + duration
    rng = random.Random(seed)  # noqa: S311 - a reproducible traffic mix, not a secret
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(
        base_url=stack.base_url, timeout=CLIENT_TIMEOUT, limits=limits
    ) as http:
        emails = list(USERS)
        workers = [
            Client(http, emails[index % len(emails)], tally, stack.organization_id).run(
                stop_at,
                random.Random(rng.random()),  # noqa: S311 - the traffic mix
            )
            for index in range(clients)
        ]
        await asyncio.gather(sample_rss(worker, tally, stop_at), *workers)
    return tally


def report(tally: Tally, duration: float) -> str:
    total = sum(tally.requests.values())
    lines = [
        f"duration: {duration:g} s, requests: {total} ({total / duration:.0f}/s)",
        "requests by kind: "
        + ", ".join(f"{kind} {tally.requests[kind]}" for kind in WEIGHTS if tally.requests[kind]),
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
        lines.append(
            "samples (s: MiB): "
            + ", ".join(f"{at:.0f}: {rss / 1024:.1f}" for at, rss in tally.samples)
        )
    else:
        lines.append("worker RSS: no sample (the worker process was not found)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the traffic mix")
    options = parser.parse_args()
    with ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="gateway-soak-"))
        served = stack.enter_context(gateway_stack(Path(folder)))
        tally = asyncio.run(soak(served, options.duration, options.clients, options.seed))
    print(report(tally, options.duration))
    return 1 if tally.errors else 0


if __name__ == "__main__":
    sys.exit(main())
