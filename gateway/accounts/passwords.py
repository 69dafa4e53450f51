"""Password hashing with argon2id, off the event loop, and the password policy."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from gateway.accounts.errors import WeakPassword

MAX_PASSWORD_BYTES = 1024


def check_password_policy(password: str, *, min_length: int) -> None:
    """Refuse a password that is too short (in characters) or too long (in UTF-8 bytes).

    The byte ceiling keeps a hostile client from making us hash megabytes per attempt.
    """
    if len(password) < min_length:
        raise WeakPassword(f"The password must be at least {min_length} characters long.")
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES:
        raise WeakPassword(f"The password must be at most {MAX_PASSWORD_BYTES} bytes long.")


class PasswordHashing:
    """argon2id (RFC 9106 defaults of argon2-cffi) in a bounded pool of threads.

    One hash costs about 64 MiB and tens of milliseconds of CPU. argon2-cffi releases the GIL
    while it works, so a small pool keeps the event loop free; its size bounds both the CPU and
    the memory that a burst of logins can take.

    ``niceness`` lowers the CPU priority of the pool's threads (and of the threads argon2 starts
    from them, which inherit it): one hash keeps about 1.5 cores busy (4 lanes), so a burst of
    sign-ins would otherwise take the cores that proxied requests and PostgREST need. With the
    cores idle it changes nothing; under contention the hashes wait, not the proxy.
    """

    __slots__ = ("_hasher", "_pool")

    def __init__(self, *, workers: int, niceness: int = 0) -> None:
        self._hasher = PasswordHasher()
        self._pool = ThreadPoolExecutor(
            max_workers=workers,
            thread_name_prefix="argon2",
            initializer=_lower_thread_priority,
            initargs=(niceness,),
        )

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """True when ``password`` matches; a malformed stored hash counts as a mismatch."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._verify_sync, password_hash, password)

    def _verify_sync(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with weaker parameters than today's (upgrade on login)."""
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _lower_thread_priority(niceness: int) -> None:
    """Add ``niceness`` to the calling thread's nice value (Linux keeps one per thread)."""
    if niceness <= 0 or not hasattr(os, "setpriority"):
        return
    thread = threading.get_native_id()
    # Best effort: where the platform refuses, hashing simply runs at normal priority.
    with contextlib.suppress(OSError):
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(19, current + niceness))
