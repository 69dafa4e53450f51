"""How long POST /auth/signup takes for a new and for a known email: the enumeration check.

    uv run python -m bench.signup_timing [--rounds 200] [--store sqlite|postgres]

The gateway runs in process (the front door, Litestar behind it, as in the tests) on a fresh
store, with a real SMTP server (aiosmtpd) on 127.0.0.1, so both cases do all their work: the
argon2 hash, the transaction, the mail. The two cases alternate request by request, so noise
from other work on the machine falls on both alike; it prints the median, p10 and p90 of each
and the difference of the medians. Not a test: timing on a shared machine is no assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import SecretStr

from gateway.settings import Settings
from gateway.store import migrate_store
from tests.support.in_process import GatewayClient
from tests.support.postgres import fresh_database, postgres_admin_url
from tests.support.smtp import smtp_server

PASSWORD = "a long enough passphrase"  # noqa: S105 - the benchmark's own throwaway account


@contextmanager
def store_url(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{folder}/gateway.db"
        return
    with (
        postgres_admin_url() as admin,
        fresh_database(admin, f"bench_signup_{secrets.token_hex(4)}") as url,
    ):
        yield url.replace("postgresql://", "postgresql+asyncpg://", 1)


async def measure(settings: Settings, rounds: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"new": [], "known": []}
    async with GatewayClient(settings) as client:
        known = {"email": "known@example.com", "password": PASSWORD}
        assert (await client.post("/auth/signup", json=known)).status_code == 202
        for n in range(-5, rounds):  # five rounds of warm-up, not counted
            for case in ("new", "known") if n % 2 else ("known", "new"):
                body = known if case == "known" else {**known, "email": f"new{n}@example.com"}
                started = time.perf_counter()
                answer = await client.post("/auth/signup", json=body)
                elapsed = (time.perf_counter() - started) * 1000
                assert answer.status_code == 202, answer.text
                if n >= 0:
                    timings[case].append(elapsed)
    return timings


def summary(values: list[float]) -> str:
    deciles = statistics.quantiles(values, n=10)
    return (
        f"median {statistics.median(values):7.2f} ms  p10 {deciles[0]:7.2f}  p90 {deciles[-1]:7.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    options = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as folder,
        store_url(options.store, Path(folder)) as url,
        smtp_server() as (port, _),
    ):
        settings = Settings(
            database_url=url,
            keys_dir=f"{folder}/keys",
            signup="open",
            smtp_url=SecretStr(f"smtp+insecure://127.0.0.1:{port}"),
            mail_from="accounts@example.com",
            link_base_url="https://app.example.com",
            auth_rate_limit=1_000_000,
        )
        asyncio.run(migrate_store(settings))
        timings = asyncio.run(measure(settings, options.rounds))
    for case, values in timings.items():
        print(f"{case:5}  {summary(values)}  ({len(values)} requests)")
    difference = statistics.median(timings["new"]) - statistics.median(timings["known"])
    print(f"median(new) - median(known) = {difference:+.2f} ms")


if __name__ == "__main__":
    main()
