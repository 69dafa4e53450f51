"""A real Redis for tests: the one on 127.0.0.1:6379 when it answers, else a throwaway server.

The throwaway one is ``redis-server`` from PATH on a free port with no persistence, stopped
when the test run ends. Neither available fails the test with what is missing.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator

from tests.support.waiting import wait_for

DEFAULT = ("127.0.0.1", 6379)


class RedisMissing(RuntimeError):
    pass


def _pings(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server(database: int = 0) -> Iterator[str]:
    """A ``redis://`` URL (of logical ``database``) of a Redis that answers PING."""
    if _pings(*DEFAULT):
        yield f"redis://{DEFAULT[0]}:{DEFAULT[1]}/{database}"
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisMissing(
            "no Redis answers on 127.0.0.1:6379 and redis-server is not on PATH: "
            "start one or install Redis (apt-get install redis-server)"
        )
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="gateway-redis-") as folder:
        options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", folder]
        process = subprocess.Popen(
            [binary, *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: _pings("127.0.0.1", port), 10, "redis-server answering PING")
            yield f"redis://127.0.0.1:{port}/{database}"
        finally:
            process.terminate()
            process.wait(timeout=10)
