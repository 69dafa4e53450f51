"""What the benchmark measures: PostgREST direct, the gateways, nginx; how each starts and stops."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.nginx import run_nginx
from bench.processes import child_pids, process_tree
from bench.proxy.database import EMAIL, PASSWORD, Database, prepared_database
from bench.proxy.progress import BenchFailed, step
from tests.support.postgrest import PostgREST, postgrest_binary, run_postgrest
from tests.support.server import run_gateway


@dataclass(frozen=True)
class Upstream:
    """One way of running PostgREST; each gets its own PostgREST and its own gateways."""

    key: str
    title: str
    config: dict[str, str]
    unix_socket: bool = False
    """The proxies reach PostgREST on a Unix socket (``server-unix-socket``), as compose.yaml
    runs it; PostgREST direct is then a second, identical PostgREST on TCP (wrk speaks TCP)."""


# PostgREST's own defaults (the test helper's are db-pool 2 and log-level info). Without
# jwt-cache-max-lifetime, PostgREST 12 checks the token's signature on every request.
DEFAULT_CONFIG = {"db-pool": "10", "log-level": "error"}
JWT_CACHE_CONFIG = {**DEFAULT_CONFIG, "jwt-cache-max-lifetime": "3600"}
UPSTREAMS = {
    "defaults": Upstream("defaults", "PostgREST with its defaults (no JWT cache)", DEFAULT_CONFIG),
    "jwt-cache": Upstream(
        "jwt-cache",
        "PostgREST with `jwt-cache-max-lifetime = 3600`, as compose.yaml runs it",
        JWT_CACHE_CONFIG,
    ),
}
UNIX_SOCKET = Upstream(
    "unix",
    "PostgREST with the JWT cache, on a Unix socket (as compose.yaml runs it)",
    JWT_CACHE_CONFIG,
    unix_socket=True,
)
"""Added by ``--unix-socket``: the gateway's ``GATEWAY_UPSTREAM_URL=unix://…``."""
LEVELS = ("warning", "info")
QUICK_LEVELS = ("warning",)
NGINX = "nginx"


@dataclass(frozen=True)
class Target:
    name: str
    base: str
    """URL prefix of the scenario paths: PostgREST's root, or the gateway's ``/rest``."""
    pids: tuple[int, ...]
    """The processes whose CPU time the run is charged with."""


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


def gateway_target(name: str, base_url: str, *, path: str = "") -> Target:
    """The gateway at ``base_url``, charged with its process and its Granian workers."""
    return Target(name, f"{base_url}{path}", tuple(process_tree(gateway_pid(base_url))))


@dataclass(frozen=True)
class Deployment:
    upstream: Upstream
    direct: PostgREST
    """The PostgREST wrk loads directly: the one behind the proxies, or its TCP twin."""
    upstream_url: str
    """The GATEWAY_UPSTREAM_URL of its gateways."""
    gateways: dict[str, str]
    """Log level → the base URL of a gateway in front of this PostgREST."""
    nginx: tuple[str, int] | None
    """nginx in front of this PostgREST (base URL, master pid), when nginx is installed."""

    def targets(self) -> dict[str, Target]:
        found = {"direct": Target("direct", self.direct.url, (self.direct.process.pid,))}
        for level, url in self.gateways.items():
            name = f"gateway ({level})"
            found[name] = gateway_target(name, url, path="/rest")
        if self.nginx is not None:
            url, pid = self.nginx
            found[NGINX] = Target(NGINX, f"{url}/rest", tuple(process_tree(pid)))
        return found


@dataclass(frozen=True)
class Options:
    """How the gateways of a run are started."""

    levels: Sequence[str] = LEVELS
    workers: int = 1
    nginx: str | None = None
    """The nginx binary, or None to leave nginx out."""


def gateway_env(database: Database, upstream_url: str, level: str, workers: int) -> dict[str, str]:
    return {
        **database.env,
        "GATEWAY_UPSTREAM_URL": upstream_url,
        "GATEWAY_AUTH_RATE_LIMIT": "1000000",
        # Sign-in attempts count against the lockout before the password is checked, so 8 (and
        # the storm's 50) clients signing in to one account at once would be throttled.
        "GATEWAY_LOGIN_MAX_FAILURES": "1000",
        "GATEWAY_LOG_LEVEL": level,
        "GATEWAY_WORKERS": str(workers),
    }


def start_postgrest(
    stack: ExitStack, upstream: Upstream, database: Database, binary: Path, socket: Path | None
) -> PostgREST:
    config = dict(upstream.config)
    if socket is not None:
        # PostgREST then listens on the socket instead of server-port (the admin server, which
        # answers /ready, stays on TCP).
        config["server-unix-socket"] = str(socket)
    return stack.enter_context(
        run_postgrest(
            db_uri=database.authenticator_url,
            jwt_secret=f"@{database.keys_dir / 'jwks.json'}",
            anon_role=database.anon_role,
            extra_config=config,
            binary=binary,
        )
    )


def start_deployment(
    stack: ExitStack, upstream: Upstream, *, database: Database, binary: Path, options: Options
) -> Deployment:
    """A PostgREST run as ``upstream`` says, a gateway per log level and (with nginx) an nginx
    in front of it; ``stack`` stops them."""
    step(f"starting {upstream.title}, and gateways at log levels {', '.join(options.levels)}")
    direct = start_postgrest(stack, upstream, database, binary, None)
    upstream_url = direct.url
    nginx_upstream = direct.url
    if upstream.unix_socket:
        socket = database.workdir / f"postgrest-{upstream.key}.sock"
        start_postgrest(stack, upstream, database, binary, socket)
        upstream_url = f"unix://{socket}"  # an absolute path: unix:///…/postgrest-unix.sock
        nginx_upstream = f"unix:{socket}"
    gateways = {
        level: stack.enter_context(
            run_gateway(
                gateway_env(database, upstream_url, level, options.workers), database.workdir
            )
        )
        for level in options.levels
    }
    proxy = None
    if options.nginx is not None:
        proxy = stack.enter_context(
            run_nginx(options.nginx, nginx_upstream, database.workdir / f"nginx-{upstream.key}")
        )
    return Deployment(upstream, direct, upstream_url, gateways, proxy)


def sign_in(gateway: str) -> str:
    """The access token of one ``POST /auth/login``: every request of the benchmark carries it."""
    answer = httpx.post(
        f"{gateway}/auth/login", json={"email": EMAIL, "password": PASSWORD}, timeout=30
    )
    if answer.status_code != 200:
        raise BenchFailed(f"POST /auth/login answered {answer.status_code}: {answer.text}")
    return str(answer.json()["access_token"])


@dataclass(frozen=True)
class Stack:
    deployments: list[Deployment]
    token: str
    row_id: int
    organization_id: int
    database_url: str
    postgres_version: str
    workdir: Path
    database: Database
    binary: Path


@contextmanager
def running_stack(
    stack: ExitStack, upstreams: Sequence[Upstream], options: Options
) -> Iterator[Stack]:
    """Database, roles, keys, and per upstream a PostgREST, its gateways and (with nginx) an
    nginx; removed on exit."""
    binary = postgrest_binary()  # first: it may have to be downloaded
    database = prepared_database(stack)
    deployments = [
        start_deployment(stack, upstream, database=database, binary=binary, options=options)
        for upstream in upstreams
    ]
    yield Stack(
        deployments=deployments,
        token=sign_in(deployments[0].gateways[options.levels[0]]),
        row_id=database.row_id,
        organization_id=database.organization_id,
        database_url=database.url,
        postgres_version=database.postgres_version,
        workdir=database.workdir,
        database=database,
        binary=binary,
    )
