"""Password hashing with argon2id, off the event loop, and the password policy."""

from __future__ import annotations

import asyncio
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
    """

    __slots__ = ("_hasher", "_pool")

    def __init__(self, *, workers: int) -> None:
        self._hasher = PasswordHasher()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")

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
