"""The mount's upstream client: aiohttp as the mount used to tune it, beside gateway.upstream.

Keep-alive GETs carrying the header block the mount sends, from this process (uvloop, pinned to
one core when it can be) to nginx answering a fixed body on loopback; and the whole mount
(PostgrestMount, an anonymous GET, no server around it) on the new client. Rounds are interleaved
(client A, client B, A, B, ...) so that a neighbour's load hits both alike; the figure is this
process's CPU time (``time.process_time``) per request, the median over rounds. Printed side by
side with the ratio; never asserted anywhere. Run: ``python -m bench.upstream_client``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from bench.nginx import nginx_binary
from gateway.proxy import MountDependencies, PostgrestMount, make_client_session
from gateway.settings import Settings
from gateway.upstream import UpstreamAddress, UpstreamClient
from tests.support.postgres import free_port

REQUESTS = 3_000
WARM_UP = 300
ROUNDS = 3
SCENARIOS = [(20, 1), (20, 16), (20_000, 1), (20_000, 16)]  # (body bytes, in flight)
# What the mount sends for an ordinary signed-in GET (gateway/proxy/_headers.py).
HEADERS = [
    (b"accept", b"application/json"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"user-agent", b"bench/1.0"),
    (b"prefer", b"count=exact"),
    (b"x-forwarded-for", b"198.51.100.7"),
    (b"x-forwarded-proto", b"http"),
    (b"x-forwarded-host", b"gateway.example"),
    (b"x-request-id", b"0123456789abcdef01234567"),
    (b"authorization", b"Bearer " + b"x" * 600),
]
CONFIG = """\
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
{user}
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ root {folder}/files; default_type application/json; etag off; }}
    }}
}}
"""

Get = Callable[[str], Awaitable[int]]


@contextmanager
def static_nginx() -> Iterator[str]:
    binary = nginx_binary()
    if binary is None:
        raise SystemExit("nginx is needed: apt-get install nginx-light")
    with tempfile.TemporaryDirectory(prefix="bench-upstream-") as folder:
        port = free_port()
        config = Path(folder) / "nginx.conf"
        config.write_text(
            CONFIG.format(
                folder=folder,
                port=port,
                user="user root;" if os.geteuid() == 0 else "",
            )
        )
        (Path(folder) / "files").mkdir()
        (Path(folder) / "files" / "small").write_bytes(b"x" * 20)
        (Path(folder) / "files" / "large").write_bytes(b"x" * 20_000)
        process = subprocess.Popen(  # noqa: S603 - the nginx found on PATH
            [binary, "-p", folder, "-c", str(config)]
        )
        try:
            time.sleep(0.5)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


async def aiohttp_client(url: str) -> tuple[Get, Callable[[], Awaitable[None]]]:
    """The session gateway/proxy/upstream.py made before gateway.upstream."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100, ttl_dns_cache=300),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None, connect=5, sock_read=60),
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
    )
    headers = [(n.decode(), v.decode()) for n, v in HEADERS]

    async def get(path: str) -> int:
        async with session.request("GET", url + path, headers=headers) as answer:
            await answer.read()
            return answer.status

    return get, session.close


async def lean_client(url: str) -> tuple[Get, Callable[[], Awaitable[None]]]:
    address = UpstreamAddress.parse(url)
    client = UpstreamClient(address, pool_size=100, connect_timeout=5, read_timeout=60)
    headers = [(b"host", address.host_header), *HEADERS]

    async def get(path: str) -> int:
        async with client.request(b"GET", address.target(path.encode()), headers) as answer:
            await answer.read()
            return answer.status

    return get, client.close


async def whole_mount(url: str) -> tuple[Get, Callable[[], Awaitable[None]]]:
    """PostgrestMount itself (header rules, the client, the answer's rules), an anonymous GET
    driven as the ASGI server would; ``/rest/small`` is ``/small`` at nginx."""
    settings = Settings(_env_file=None, upstream_url=url, cookie_secure=False)
    http = make_client_session(settings)
    unused: Any = None  # an anonymous request reaches no key, cache nor revocation set
    dependencies = MountDependencies(keys=unused, tokens=unused, revocations=unused, http=http)
    mount = PostgrestMount(settings, lambda: dependencies)
    headers = [(b"host", b"gateway.example"), *(h for h in HEADERS if h[0] != b"authorization")]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def get(path: str) -> int:
        status = 0

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            status = message.get("status", status)

        scope = {
            "type": "http",
            "http_version": "1.1",
            "scheme": "http",
            "method": "GET",
            "path": "/rest" + path,
            "raw_path": b"/rest" + path.encode(),
            "query_string": b"",
            "headers": headers,
            "client": ("198.51.100.7", 50000),
            "server": ("127.0.0.1", 8000),
        }
        await mount(scope, receive, send)
        return status

    return get, http.close


async def cpu_per_request(get: Get, path: str, in_flight: int) -> float:
    async def worker(count: int) -> None:
        for _ in range(count):
            await get(path)

    await asyncio.gather(*(worker(WARM_UP // in_flight) for _ in range(in_flight)))
    started = time.process_time()
    await asyncio.gather(*(worker(REQUESTS // in_flight) for _ in range(in_flight)))
    return (time.process_time() - started) / (REQUESTS // in_flight * in_flight) * 1e6


async def measure(url: str) -> dict[tuple[str, int, int], list[float]]:
    makers = {
        "aiohttp (tuned)": aiohttp_client,
        "gateway.upstream": lean_client,
        "PostgrestMount": whole_mount,
    }
    results: dict[tuple[str, int, int], list[float]] = {}
    for _ in range(ROUNDS):
        for size, in_flight in SCENARIOS:
            for name, make in makers.items():
                get, close = await make(url)
                path = "/small" if size == 20 else "/large"
                micros = await cpu_per_request(get, path, in_flight)
                await close()
                results.setdefault((name, size, in_flight), []).append(micros)
    return results


def main() -> None:
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with static_nginx() as url:
        results = uvloop.run(measure(url))
    print(f"CPU µs per keep-alive GET, median of {ROUNDS} interleaved rounds of {REQUESTS}")
    print("| body, in flight | aiohttp (tuned) | gateway.upstream | ratio | whole mount on it |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for size, in_flight in SCENARIOS:
        old, new, mount = (
            statistics.median(results[(name, size, in_flight)])
            for name in ("aiohttp (tuned)", "gateway.upstream", "PostgrestMount")
        )
        print(f"| {size} B, {in_flight} | {old:.0f} | {new:.0f} | {old / new:.2f}x | {mount:.0f} |")


if __name__ == "__main__":
    main()
