"""What auth.check_session() costs PostgREST per request: two PostgRESTs side by side, one run.

Both serve the same database with the same JWKS file, ``db-config = false`` (so neither reads the
role's ``pgrst.db_pre_request`` that ``bootstrap --check-sessions`` sets) and one pool size; only
one of them has ``db-pre-request = "auth.check_session"`` in its file. wrk loads each with the
same single-row GET and a live session's token, the two alternating for ``--rounds`` rounds; the
medians of req/s and p50 are printed with the difference and the ratio.

    python -m bench.check_session [--seconds 10] [--rounds 3] [--connections 8]

Needs wrk on PATH and PostgreSQL on 127.0.0.1:5432 (as the tests do). About a minute at the
defaults. A benchmark, not a test: it asserts nothing about the numbers.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

import httpx
import jwt

from bench.proxy.database import EMAIL, PASSWORD, Database, gateway_cli, prepared_database
from bench.proxy.measure import Wrk, run_wrk
from bench.proxy.progress import BenchFailed, step
from bench.proxy.scenarios import Scenario
from gateway.tokens import load_keyring, sign_access_token
from tests.conftest import settings_from
from tests.support.in_process import SyncGatewayClient
from tests.support.postgrest import PostgREST, postgrest_binary, run_postgrest

PRE_REQUEST = "auth.check_session"
CHECKED = "with check_session"


def start(stack: ExitStack, database: Database, binary: Path, *, checked: bool) -> PostgREST:
    config = {"db-config": "false", "db-pool": "4"}
    if checked:
        config["db-pre-request"] = PRE_REQUEST
    return stack.enter_context(
        run_postgrest(
            db_uri=database.authenticator_url,
            jwt_secret=f"@{database.keys_dir / 'jwks.json'}",
            anon_role=database.anon_role,
            extra_config=config,
            binary=binary,
        )
    )


def live_token(database: Database) -> str:
    with SyncGatewayClient(settings_from(database.env)) as client:
        answer = client.post("/auth/login", json={"email": EMAIL, "password": PASSWORD})
    if answer.status_code != 200:
        raise BenchFailed(f"POST /auth/login answered {answer.status_code}: {answer.text}")
    return str(answer.json()["access_token"])


def check_both_answer(
    servers: dict[str, PostgREST], path: str, token: str, database: Database
) -> None:
    """Both answer the live token; only the checked one refuses a token of no session."""
    ring = load_keyring(settings_from(database.env))
    claims = jwt.decode(token, options={"verify_signature": False})
    no_session = sign_access_token(ring, {**claims, "sid": "no-such-session"})
    for name, server in servers.items():
        answer = httpx.get(f"{server.url}{path}", headers=bearer(token), timeout=10)
        if answer.status_code != 200 or len(answer.json()) != 1:
            raise BenchFailed(f"{name} answered {answer.status_code}: {answer.text[:200]}")
        refused = httpx.get(f"{server.url}{path}", headers=bearer(no_session), timeout=10)
        if (refused.status_code == 401) != (name == CHECKED):
            raise BenchFailed(f"{name} answered a token of no session {refused.status_code}")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    wrk_binary = shutil.which("wrk")
    if wrk_binary is None:
        print("bench: wrk is not on PATH (apt-get install wrk)", file=sys.stderr)
        return 1
    try:
        with ExitStack() as stack:
            binary = postgrest_binary()
            database = prepared_database(stack)
            gateway_cli(database.env, "postgrest", "bootstrap", "--check-sessions")
            servers = {
                "without": start(stack, database, binary, checked=False),
                CHECKED: start(stack, database, binary, checked=True),
            }
            token = live_token(database)
            path = f"/projects?id=eq.{database.row_id}"
            check_both_answer(servers, path, token, database)
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-cs-")))
            wrk = Wrk(wrk_binary, folder, token, threads=2)
            scenario = Scenario("one", "1 row", path, args.connections)
            rps: dict[str, list[float]] = {name: [] for name in servers}
            p50: dict[str, list[float]] = {name: [] for name in servers}
            for round_number in range(1, args.rounds + 1):
                for name, server in servers.items():
                    step(f"round {round_number}/{args.rounds}: {name}")
                    numbers = run_wrk(
                        wrk, server.url + path, scenario=scenario, seconds=args.seconds
                    )
                    rps[name].append(numbers["requests"] / (numbers["duration_us"] / 1e6))
                    p50[name].append(numbers["p50_us"] / 1000)
    except BenchFailed as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    base, checked = "without", CHECKED
    medians = {name: (statistics.median(rps[name]), statistics.median(p50[name])) for name in rps}
    print(f"GET {path}, {args.connections} connections, {args.rounds} x {args.seconds} s each")
    for name, (r, p) in medians.items():
        rounds = ", ".join(f"{x:.0f}" for x in rps[name])
        print(f"  {name:<20} {r:8.0f} req/s   p50 {p:6.2f} ms   (rounds: {rounds} req/s)")
    added_ms = medians[checked][1] - medians[base][1]
    print(f"  p50 added per request: {added_ms:+.2f} ms")
    print(f"  req/s ratio (with / without): {medians[checked][0] / medians[base][0]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
