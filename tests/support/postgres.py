"""A PostgreSQL server for the tests: the one at GATEWAY_TEST_DATABASE_URL, or a throwaway cluster.

Tests never skip for want of a server: when none answers and the server binaries exist, a cluster
is created in a temporary folder on a free port and removed afterwards; when the binaries are
missing too, the tests fail with a message that says what to install.
"""

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
from pathlib import Path

import asyncpg

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class PostgresMissing(Exception):
    pass


def configured_admin_url() -> str:
    return os.environ.get("GATEWAY_TEST_DATABASE_URL", DEFAULT_ADMIN_URL)


def server_answers(url: str) -> bool:
    async def probe() -> None:
        connection = await asyncpg.connect(url, timeout=3)
        await connection.close()

    try:
        asyncio.run(probe())
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Create, start and finally remove a PostgreSQL cluster; yields its admin URL."""
    binaries = find_server_binaries()
    if binaries is None:
        raise PostgresMissing(
            f"No PostgreSQL server answers at {configured_admin_url()} and the PostgreSQL "
            "server binaries (initdb, pg_ctl) are not installed. Install them (Debian/Ubuntu: "
            "`apt-get install postgresql`) or set GATEWAY_TEST_DATABASE_URL to a server."
        )
    folder = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root; use the postgres account the packages create.
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresMissing(
                "Running as root, a throwaway cluster needs a 'postgres' account to run as; "
                "none exists. Set GATEWAY_TEST_DATABASE_URL to a running server instead."
            ) from None
        os.chown(folder, account.pw_uid, account.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    data = folder / "data"
    port = free_port()
    try:
        subprocess.run(
            [
                *run_as,
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *run_as,
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-w",
                "-l",
                str(folder / "log"),
                "-o",
                f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def postgres_admin_url() -> Iterator[str]:
    url = configured_admin_url()
    if server_answers(url):
        yield url
        return
    with throwaway_cluster() as throwaway_url:
        yield throwaway_url


@contextmanager
def fresh_database(admin_url: str, name: str) -> Iterator[str]:
    """Create the database ``name`` for this test run and drop it afterwards; yields its URL."""

    async def execute(sql: str) -> None:
        connection = await asyncpg.connect(admin_url, timeout=10)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        base, _, _ = admin_url.rpartition("/")
        yield f"{base}/{name}"
    finally:
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
