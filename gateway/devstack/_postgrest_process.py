"""PostgREST for the dev stack: its config file (owner-only), its log, and its readiness."""

from __future__ import annotations

import os
import subprocess
import tempfile
from contextlib import ExitStack
from pathlib import Path

from gateway.devstack._children import start_child, stop_child, wait_until_ready
from gateway.devstack._postgres import free_port, port_is_free


def start_postgrest(
    binary: Path,
    parts: ExitStack,
    *,
    db_uri: str,
    anon_role: str,
    schemas: str,
    jwks_file: Path,
    preferred_port: int | None,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start PostgREST on 127.0.0.1 and wait until it is ready.

    It serves on ``preferred_port`` when that port is free (the port of
    ``GATEWAY_UPSTREAM_URL``, so `gateway doctor` run in the folder finds it), else on any
    free port; its admin server (``/ready``) always on a free one.

    Its folder (config and log) and the process itself are entered on ``parts``, so they are
    stopped and removed with the rest of the stack.

    Returns:
        The process and the port it serves on.
    """
    folder = Path(parts.enter_context(tempfile.TemporaryDirectory(prefix="gateway-dev-")))
    port, admin_port = _two_ports(preferred_port)
    config_path = folder / "postgrest.conf"
    # It holds the authenticator's password: owner-only from the moment it exists.
    descriptor = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(
            postgrest_config(
                db_uri=db_uri,
                anon_role=anon_role,
                schemas=schemas,
                jwks_file=jwks_file,
                port=port,
                admin_port=admin_port,
            )
        )
    log_path = folder / "postgrest.log"
    # PGRST_* variables would override the file; this instance depends on the file alone.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGRST_")}
    with log_path.open("wb") as log:
        process = start_child([str(binary), str(config_path)], env=env, cwd=folder, output=log)
    parts.callback(stop_child, process)
    wait_until_ready(f"http://127.0.0.1:{admin_port}/ready", process, "PostgREST", log_path)
    return process, port


def postgrest_config(
    *, db_uri: str, anon_role: str, schemas: str, jwks_file: Path, port: int, admin_port: int
) -> str:
    values = {
        "db-uri": db_uri,
        "db-schemas": schemas,
        "db-anon-role": anon_role,
        "db-pool": "4",
        # `gateway keys rotate` and `gateway postgrest reload` reach PostgREST by NOTIFY.
        "db-channel-enabled": "true",
        "jwt-secret": f"@{jwks_file}",
        # As compose.yaml: the gateway has verified the token (and checks revocation), so
        # PostgREST may skip re-verifying the signature of a token it has seen.
        "jwt-cache-max-lifetime": "3600",
        "server-host": "127.0.0.1",
        "server-port": str(port),
        "admin-server-port": str(admin_port),
        "log-level": "warn",
    }
    return "".join(f"{key} = {_quoted(value)}\n" for key, value in values.items())


def _quoted(value: str) -> str:
    """A PostgREST config string; its parser takes numbers and booleans quoted too."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _two_ports(preferred: int | None) -> tuple[int, int]:
    first = preferred if preferred is not None and port_is_free(preferred) else free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second
