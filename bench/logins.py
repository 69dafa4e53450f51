"""Sign-ins against a running gateway: latency, sign-ins per second, and a login storm.

The proxy benchmark (bench/proxy/) uses this for its report; it is not a command of its own.
Each client is an asyncio task with its own connection that posts ``/auth/login`` again as soon
as the last one answered, for a fixed time. Every answer must be 200: anything else is an error
and fails the benchmark, because a benchmark of failing sign-ins measures nothing.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import aiohttp


class LoginFailed(Exception):
    pass


@dataclass(frozen=True)
class LoginStats:
    clients: int
    seconds: float
    latencies_ms: tuple[float, ...]

    @property
    def per_second(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.latencies_ms)


async def _client(
    session: aiohttp.ClientSession, url: str, body: dict[str, str], deadline: float
) -> list[float]:
    latencies = []
    while time.monotonic() < deadline:
        started = time.perf_counter()
        async with session.post(url, json=body) as answer:
            text = await answer.text()
            if answer.status != 200:
                raise LoginFailed(f"POST /auth/login answered {answer.status}: {text[:200]}")
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def _sign_in_for(
    base_url: str, email: str, password: str, *, clients: int, seconds: float
) -> LoginStats:
    body = {"email": email, "password": password}
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        started = time.monotonic()
        deadline = started + seconds
        per_client = await asyncio.gather(
            *(_client(session, f"{base_url}/auth/login", body, deadline) for _ in range(clients))
        )
        elapsed = time.monotonic() - started
    latencies = tuple(x for client in per_client for x in client)
    if not latencies:
        raise LoginFailed("no sign-in completed")
    return LoginStats(clients=clients, seconds=elapsed, latencies_ms=latencies)


def sign_in_for(
    base_url: str, email: str, password: str, *, clients: int, seconds: float
) -> LoginStats:
    """``clients`` clients signing in back to back for ``seconds``; raises LoginFailed."""
    return asyncio.run(_sign_in_for(base_url, email, password, clients=clients, seconds=seconds))
