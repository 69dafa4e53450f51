"""Which PostgreSQL the dev stack uses: the one named, a local server, or a throwaway cluster."""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from gateway.devstack.errors import DevStackError

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
DEV_DATABASE = "gateway_dev"
MAINTENANCE_DATABASE = "postgres"


@dataclass(frozen=True, slots=True)
class DevDatabase:
    """The database the dev stack serves through PostgREST, and how it was found."""

    url: str
    """The dev database, as the user that creates roles and tables (asyncpg form)."""
    origin: str
    """A sentence for the progress output: where this PostgreSQL comes from."""


def with_database(url: str, database: str) -> str:
    """The same server and user, another database (built from parts, never pasted)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def database_name(url: str) -> str:
    name = urlsplit(url).path.lstrip("/")
    if not name:
        raise DevStackError("GATEWAY_DEV_DATABASE_URL names no database: add /<name> to it.")
    return name


def with_user(url: str, user: str, password: str) -> str:
    """The same server and database as ``user``: PostgREST's ``db-uri``."""
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}{port}"))


def answers(url: str) -> bool:
    async def probe() -> None:
        connection = await asyncpg.connect(url, timeout=3)
        await connection.close()

    try:
        asyncio.run(probe())
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return True


@contextmanager
def dev_database(explicit_url: str | None) -> Iterator[DevDatabase]:
    """The dev stack's PostgreSQL, in order: ``explicit_url``, 127.0.0.1:5432, a throwaway one.

    A throwaway cluster lives in a temporary folder that is removed, with the cluster stopped,
    when the context ends, however it ends.
    """
    if explicit_url:
        url = explicit_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        database_name(url)
        yield DevDatabase(url=url, origin="PostgreSQL at GATEWAY_DEV_DATABASE_URL")
        return
    if answers(LOCAL_SERVER):
        yield DevDatabase(
            url=with_database(LOCAL_SERVER, DEV_DATABASE),
            origin="the PostgreSQL server on 127.0.0.1:5432",
        )
        return
    with throwaway_cluster() as admin_url:
        yield DevDatabase(
            url=with_database(admin_url, DEV_DATABASE),
            origin="a throwaway PostgreSQL cluster (removed when gateway dev stops)",
        )


def find_server_binaries() -> Path | None:
    candidates = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Create and start a cluster on a free port (trust, 127.0.0.1 only); yield its admin URL."""
    binaries = find_server_binaries()
    if binaries is None:
        raise DevStackError(
            "No PostgreSQL server answers on 127.0.0.1:5432 and the PostgreSQL server binaries "
            "(initdb, pg_ctl) are not installed. Install them (Debian/Ubuntu: `apt-get install "
            "postgresql`) or set GATEWAY_DEV_DATABASE_URL to a database."
        )
    folder = Path(tempfile.mkdtemp(prefix="gateway-dev-pg-"))
    run_as: list[str] = []
    try:
        if os.geteuid() == 0:
            # initdb refuses to run as root; use the account the PostgreSQL packages create.
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise DevStackError(
                    "Running as root, a throwaway cluster needs a 'postgres' account to run "
                    "as; none exists. Set GATEWAY_DEV_DATABASE_URL to a running server instead."
                ) from None
            os.chown(folder, account.pw_uid, account.pw_gid)
            run_as = ["runuser", "-u", "postgres", "--"]
        data = folder / "data"
        port = free_port()
        _run("initdb", [*run_as, str(binaries / "initdb"), "-D", str(data), "-U", "postgres",
              "--auth=trust", "--no-sync", "-E", "UTF8"])  # fmt: skip
        _run("pg_ctl start", [*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-w", "-l",
              str(folder / "log"), "-o",
              f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off",
              "start"])  # fmt: skip
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/{MAINTENANCE_DATABASE}"
        finally:
            subprocess.run(  # noqa: S603  (the server binaries found above, fixed arguments)
                [*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                check=False,
                capture_output=True,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(name: str, argv: list[str]) -> None:
    result = subprocess.run(  # noqa: S603  (the server binaries found above)
        argv, check=False, capture_output=True, text=True
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise DevStackError(f"{name} failed: {' '.join(tail)}")
