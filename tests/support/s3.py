"""A real S3 server for the storage tests: s3rver, installed into ``.cache/``, run on 127.0.0.1.

The gateway's URLs are only worth something if an S3 server that checks SigV4 accepts them and
refuses tampered ones, so the tests run one instead of imitating its checks. moto and the
original ``s3rver`` accept any query-string signature; the ``@20minutes/s3rver`` fork computes
SigV4 and refuses a tampered, expired or re-targeted URL (it does not check POST policies: see
docs/storage.md). It comes from the npm registry, pinned with its whole dependency tree by
``tests/support/s3rver/package-lock.json`` (``npm ci`` checks every package's sha512), and is
installed by this module, so a fresh clone needs nothing by hand. When it cannot be had the tests
fail with a message naming what is missing: they never skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.postgres import free_port
from tests.support.postgrest import log_tail, stop

S3RVER_PACKAGE = "@20minutes/s3rver"
S3RVER_VERSION = "4.0.4"
# The registry's dist.integrity for exactly this version; package-lock.json must say the same.
S3RVER_INTEGRITY = (
    "sha512-PjHr14ShAixJUwWCqFLzAyNHwW6Ex5P14IG0Nx+9yk"
    "Mshv+BsgFoc6EoDl3MEBFk4fCwZ1idb6Ww7Ghkzfd6rQ=="
)
SOURCE = Path(__file__).resolve().parent / "s3rver"
REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_ENV = "GATEWAY_TEST_S3RVER_DIR"
READY_TIMEOUT = 20.0
# What the gateway and the server share in the tests; the server knows no other key pair.
ACCESS_KEY_ID = "AKIAGATEWAYTEST"
SECRET_ACCESS_KEY = "gateway-test-secret"
REGION = "eu-west-1"


class S3ServerMissing(Exception):
    """s3rver is neither cached nor installable; the message says what to install or set."""


class S3ServerFailed(Exception):
    """The server did not start; the message carries the end of its log."""


@dataclass(frozen=True)
class S3Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)


def s3rver_dir() -> Path:
    """The folder whose node_modules holds s3rver: $GATEWAY_TEST_S3RVER_DIR, or the cache."""
    override = os.environ.get(INSTALL_ENV)
    if override:
        folder = Path(override)
        if not (folder / "node_modules" / S3RVER_PACKAGE / "package.json").is_file():
            raise S3ServerMissing(
                f"{INSTALL_ENV}={override} holds no node_modules/{S3RVER_PACKAGE}."
            )
        return folder
    lock = (SOURCE / "package-lock.json").read_bytes()
    # The cache folder is named after the lockfile: a changed pin installs afresh.
    folder = REPO_ROOT / ".cache" / "s3rver" / hashlib.sha256(lock).hexdigest()[:16]
    if not (folder / "node_modules" / S3RVER_PACKAGE / "package.json").is_file():
        install_s3rver(folder, lock)
    return folder


def install_s3rver(target: Path, lock: bytes) -> None:
    """``npm ci`` from the pinned lockfile into a temporary folder, then renamed into place.

    ``npm ci`` installs exactly the lockfile's tree and refuses a package whose sha512 differs;
    ``--ignore-scripts`` runs no install script of any package. Parallel runs each install into
    their own folder; the first rename wins and the others remove theirs.
    """
    pinned = json.loads(lock)["packages"].get(f"node_modules/{S3RVER_PACKAGE}", {})
    if (pinned.get("version"), pinned.get("integrity")) != (S3RVER_VERSION, S3RVER_INTEGRITY):
        raise S3ServerMissing(
            f"{SOURCE / 'package-lock.json'} does not pin {S3RVER_PACKAGE} {S3RVER_VERSION} "
            "with its registry sha512; not installed."
        )
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise S3ServerMissing(
            f"The storage tests need Node.js 20 or later with npm, to install {S3RVER_PACKAGE} "
            f"{S3RVER_VERSION} from the npm registry into {target}; neither 'node' nor 'npm' "
            f"is on PATH. Install Node.js (apt-get install nodejs npm), or set {INSTALL_ENV} to "
            "a folder where it is installed."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(SOURCE / name, partial / name)
        result = subprocess.run(
            [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--omit=dev"],
            cwd=partial,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise S3ServerMissing(
                f"npm ci could not install {S3RVER_PACKAGE} {S3RVER_VERSION} into {target} "
                f"(is the npm registry reachable?):\n{result.stderr[-2000:]}"
            )
        try:
            partial.rename(target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


@contextmanager
def run_s3_server(*buckets: str, folder: Path | None = None) -> Iterator[S3Server]:
    """s3rver on a free 127.0.0.1 port with ``buckets`` created, objects in a temporary folder,
    checking signatures made with ACCESS_KEY_ID/SECRET_ACCESS_KEY only; stopped afterwards."""
    installed = folder or s3rver_dir()
    port = free_port()
    env = {
        **os.environ,
        "S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        # serve.js stays in the repository; its require() finds the installed packages here.
        "NODE_PATH": str(installed / "node_modules"),
    }
    with tempfile.TemporaryDirectory(prefix="gateway-s3-") as scratch:
        log_path = Path(scratch) / "s3rver.log"
        objects = Path(scratch) / "objects"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                ["node", str(SOURCE / "serve.js"), str(port), str(objects), *buckets],
                cwd=scratch,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        server = S3Server(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
        try:
            wait_until_listening(server, port)
            yield server
        finally:
            stop(process)


def wait_until_listening(server: S3Server, port: int, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise S3ServerFailed(
                f"s3rver exited with code {server.process.returncode} before listening:\n"
                + server.log_tail()
            )
        if "listening" in log_tail(server.log_path, 5):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                pass
        time.sleep(0.05)
    raise S3ServerFailed(f"s3rver was not listening after {timeout:g} s:\n" + server.log_tail())
