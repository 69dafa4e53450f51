"""``gateway dev``: the whole stack on this machine, up in one command, down on Ctrl-C.

Order matters both ways: PostgreSQL, then the database (roles, helpers, the example table), the
store, the keystore and the demo account, then PostgREST reading the keystore's JWKS, then the
gateway in front of it. Stopping goes the other way round. Every part is entered on one
:class:`contextlib.ExitStack`, so whatever has started is stopped on every exit path: Ctrl-C
(SIGINT), SIGTERM, a part that fails to start, a child that dies.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from gateway.devstack._children import start_child, stop_child, wait_until_ready
from gateway.devstack._database import bootstrap_database, ensure_database, seed_example_rows
from gateway.devstack._demo import ensure_demo_account
from gateway.devstack._postgres import DevDatabase, dev_database, with_user
from gateway.devstack._postgrest_process import start_postgrest
from gateway.devstack.errors import DevStackError
from gateway.devstack.postgrest_binary import find_postgrest, terminal_progress
from gateway.postgrest import BootstrapPlan
from gateway.settings import Settings
from gateway.store import migrate_store
from gateway.tokens import ensure_keystore

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DevStackOptions:
    """What ``gateway dev`` was asked for; everything else comes from the settings."""

    port: int
    database_url: str | None
    """``GATEWAY_DEV_DATABASE_URL``: the database to use (created when missing)."""
    postgrest_bin: str | None
    """``GATEWAY_POSTGREST_BIN``: the PostgREST binary to run."""
    email: str
    """``GATEWAY_DEV_EMAIL``: the demo user."""
    password: str
    """``GATEWAY_DEV_PASSWORD``: their password on the first run."""


class _Stopped(Exception):
    """Raised in the main thread by SIGINT or SIGTERM, so the ExitStack unwinds."""


def run_dev_stack(settings: Settings, options: DevStackOptions, say: Say) -> None:
    """Bring the stack up, print how to use it, and run until a signal or a child's death.

    Raises:
        DevStackError: a part could not start; everything started so far is stopped.
    """
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def stop(signum: int, frame: FrameType | None) -> None:
        # A second Ctrl-C must not cut the clean-up short: it is ignored until we are done.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        raise _Stopped

    for sig in previous:
        signal.signal(sig, stop)
    try:
        with ExitStack() as parts:
            started = time.monotonic()
            base_url, database, postgrest_port, children = _start(settings, options, say, parts)
            say(
                f"gateway dev: ready on {base_url} in {time.monotonic() - started:.1f} s "
                "(Ctrl-C stops everything)"
            )
            say(_next_steps(base_url, options))
            say(_other_commands(database.url, postgrest_port, settings.upstream_url))
            _watch(children)
    except _Stopped:
        say("gateway dev: stopped; nothing is left running")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(
    settings: Settings, options: DevStackOptions, say: Say, parts: ExitStack
) -> tuple[str, DevDatabase, int, dict[str, subprocess.Popen[bytes]]]:
    binary = find_postgrest(override=options.postgrest_bin, progress=terminal_progress)
    say(f"postgrest: {binary}")
    database: DevDatabase = parts.enter_context(dev_database(options.database_url))
    say(f"postgres: {database.origin}")
    plan = BootstrapPlan.from_settings(settings, example=True)
    password = secrets.token_urlsafe(24)
    if asyncio.run(ensure_database(database.url)):
        say("postgres: created the dev database")
    asyncio.run(bootstrap_database(database.url, plan, password))
    say(f"postgres: roles {', '.join(plan.switchable_roles)} for {plan.authenticator_role}; "
        "auth.* helpers; example table public.projects")  # fmt: skip
    say("store: migrating ...")
    applied = asyncio.run(migrate_store(settings))
    say("store: migrations applied" if applied else "store: already up to date")
    if ensure_keystore(settings):
        say(f"keys: created a keystore in {settings.keys_dir}")
    account = asyncio.run(
        ensure_demo_account(settings, email=options.email, password=options.password)
    )
    rows = asyncio.run(seed_example_rows(database.url, account.organization_id))
    kept = "" if account.created else ", kept from an earlier run"
    say(f"demo: organization {account.organization_id} with {rows} projects; user "
        f"{account.email} (org_admin{kept})")  # fmt: skip

    postgrest, postgrest_port = start_postgrest(
        binary,
        parts,
        db_uri=with_user(database.url, plan.authenticator_role, password),
        anon_role=plan.anon_role,
        schemas=",".join(settings.postgrest_schemas),
        jwks_file=(Path(settings.keys_dir) / "jwks.json").resolve(),
        preferred_port=_postgrest_port_choice(settings.upstream_url, gateway_port=options.port),
    )
    say(f"postgrest: http://127.0.0.1:{postgrest_port} (JWKS from {settings.keys_dir}/jwks.json)")

    base_url = f"http://127.0.0.1:{options.port}"
    gateway = start_child(
        [sys.executable, "-m", "gateway", "serve"],
        env=_gateway_env(settings, options, base_url, database.url, postgrest_port, plan),
        cwd=Path.cwd(),
        output=None,
    )
    parts.callback(stop_child, gateway)
    wait_until_ready(f"{base_url}/readyz", gateway, "the gateway", None)
    return base_url, database, postgrest_port, {"PostgREST": postgrest, "the gateway": gateway}


def _other_commands(database_url: str, postgrest_port: int, upstream_url: str) -> str:
    """How `gateway doctor`, `keys rotate` and `postgrest reload` run there reach this stack."""
    parts = urlsplit(database_url)
    # Never print a password: the user knows the URL they gave.
    shown = "$GATEWAY_DEV_DATABASE_URL" if parts.password else database_url
    variables = f"GATEWAY_POSTGREST_NOTIFY_URL={shown}"
    if _local_port(upstream_url) != postgrest_port:
        variables += f" GATEWAY_UPSTREAM_URL=http://127.0.0.1:{postgrest_port}"
    return (
        "  other gateway commands in this folder act on this stack; for doctor, keys rotate and "
        f"postgrest reload to reach its PostgREST and database, set {variables}"
    )


def _postgrest_port_choice(upstream_url: str, *, gateway_port: int) -> int | None:
    """The upstream URL's local port, unless the gateway is to listen there itself."""
    port = _local_port(upstream_url)
    return None if port == gateway_port else port


def _local_port(url: str) -> int | None:
    """The port of ``url`` when it names this machine, for PostgREST to take if it is free."""
    parts = urlsplit(url)
    if parts.hostname in ("127.0.0.1", "localhost") and parts.port:
        return parts.port
    return None


def _gateway_env(
    settings: Settings,
    options: DevStackOptions,
    base_url: str,
    database_url: str,
    postgrest_port: int,
    plan: BootstrapPlan,
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_PORT=str(options.port),
        GATEWAY_UPSTREAM_URL=f"http://127.0.0.1:{postgrest_port}",
        GATEWAY_POSTGREST_NOTIFY_URL=database_url,
        GATEWAY_ANON_ROLE=plan.anon_role,
        GATEWAY_AUTHENTICATOR_ROLE=plan.authenticator_role,
        GATEWAY_DEMO="true",
        # Plain HTTP on 127.0.0.1: a Secure cookie would never come back.
        GATEWAY_COOKIE_SECURE="false",
        GATEWAY_DEV_MODE="true",
    )
    if "issuer" not in settings.model_fields_set:
        env["GATEWAY_ISSUER"] = base_url
    return env


def _watch(children: dict[str, subprocess.Popen[bytes]]) -> None:
    """Wait for a signal; a child that exits by itself takes the whole stack down with it."""
    while True:
        for name, process in children.items():
            code = process.poll()
            if code is not None:
                raise DevStackError(f"{name} exited with code {code}; the dev stack is stopped.")
        time.sleep(0.5)


def _next_steps(base_url: str, options: DevStackOptions) -> str:
    body = json.dumps({"email": options.email, "password": options.password})
    login = (
        f"curl -s {base_url}/auth/login -H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )
    return "\n".join(
        [
            f"  sign in as {options.email} / {options.password} "
            "(GATEWAY_DEV_EMAIL, GATEWAY_DEV_PASSWORD)",
            f"  browser demo: {base_url}/demo",
            "  try it:",
            f"    TOKEN=$({login} | python3 -c 'import json,sys; "
            'print(json.load(sys.stdin)["access_token"])\')',
            f'    curl -s {base_url}/rest/projects -H "Authorization: Bearer $TOKEN"',
            '  README.md, "Try it", goes on from there (write rows, paginate, log out).',
        ]
    )
