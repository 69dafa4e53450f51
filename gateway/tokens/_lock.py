"""The keystore's inter-process lock: every mutation holds ``keys_dir/.lock`` exclusively."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from filelock import FileLock, Timeout

from gateway.tokens.errors import KeystoreBusy, KeystoreUnwritable, describe_os_error

LOCK_NAME: Final = ".lock"
#: Long enough to wait out another rotation (an RSA key takes well under a second to make).
LOCK_TIMEOUT_SECONDS: Final = 30.0


@contextmanager
def exclusive(directory: Path, *, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[None]:
    """Hold the keystore lock of ``directory`` for the block.

    The lock is an ``flock`` on a file that stays in place, so it is released by the kernel when
    a holder dies: a crashed rotation never wedges the keystore.

    Raises:
        KeystoreBusy: another process held the lock for ``timeout`` seconds.
        KeystoreUnwritable: the lock file cannot be created.
    """
    path = directory / LOCK_NAME
    lock = FileLock(path, timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise KeystoreBusy(
            f"another gateway command has held {path} for {timeout:g} s; let it finish and retry"
        ) from None
    except OSError as exc:
        raise KeystoreUnwritable(describe_os_error(exc, path)) from None
    try:
        yield
    finally:
        lock.release()
