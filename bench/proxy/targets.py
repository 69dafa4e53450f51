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
    postgrest: PostgREST
    gateways: dict[str, str]
    """Log level → the base URL of a gateway in front of this PostgREST."""
    nginx: tuple[str, int] | None
    """nginx in front of this PostgREST (base URL, master pid), when nginx is installed."""

    def targets(self) -> dict[str, Target]:
        found = {"direct": Target("direct", self.postgrest.url, (self.postgrest.process.pid,))}
        for level, url in self.gateways.items():
            name = f"gateway ({level})"
            found[name] = gateway_target(name, url, path="/rest")
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


def start_deployment(
    stack: ExitStack, upstream: Upstream, *, database: Database, binary: Path, nginx: str | None
) -> Deployment:
    """A PostgREST run as ``upstream`` says, a gateway per log level and (with ``nginx``) an
    nginx in front of it; ``stack`` stops them."""
    step(f"starting {upstream.title}, and gateways at log levels {', '.join(LEVELS)}")
    postgrest = stack.enter_context(
        run_postgrest(
            db_uri=database.authenticator_url,
            jwt_secret=f"@{database.keys_dir / 'jwks.json'}",
            anon_role=database.anon_role,
            extra_config=upstream.config,
            binary=binary,
        )
    )
    gateways = {
        level: stack.enter_context(
            run_gateway(
                {
                    **database.env,
                    "GATEWAY_UPSTREAM_URL": postgrest.url,
                    "GATEWAY_AUTH_RATE_LIMIT": "1000000",
                    "GATEWAY_LOG_LEVEL": level,
                    "GATEWAY_WORKERS": "1",
                },
                database.workdir,
            )
        )
        for level in LEVELS
    }
    proxy = None
    if nginx is not None:
        proxy = stack.enter_context(
            run_nginx(nginx, postgrest.url, database.workdir / f"nginx-{upstream.key}")
        )
    return Deployment(upstream, postgrest, gateways, proxy)


def sign_in(gateway: str) -> str:
    """The access token of one ``POST /auth/login``: every request of the benchmark carries it."""
    answer = httpx.post(
        f"{gateway}/auth/login", json={"email": EMAIL, "password": PASSWORD}, timeout=30
    )
    if answer.status_code != 200:
        raise BenchFailed(f"POST /auth/login answered {answer.status_code}: {answer.text}")
    return str(answer.json()["access_token"])


@contextmanager
def running_stack(
    stack: ExitStack, upstreams: Sequence[Upstream], nginx: str | None
) -> Iterator[Stack]:
    """Database, roles, keys, and per upstream a PostgREST, two gateways and (with ``nginx``)
    an nginx; removed on exit."""
    binary = postgrest_binary()  # first: it may have to be downloaded
    database = prepared_database(stack)
    deployments = [
        start_deployment(stack, upstream, database=database, binary=binary, nginx=nginx)
        for upstream in upstreams
    ]
    yield Stack(
        deployments=deployments,
        token=sign_in(deployments[0].gateways[LEVELS[0]]),
        row_id=database.row_id,
        organization_id=database.organization_id,
        database_url=database.url,
        postgres_version=database.postgres_version,
        workdir=database.workdir,
    )
