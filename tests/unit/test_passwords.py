"""Passwords: argon2id with RFC 9106 defaults, off the event loop, with a length policy."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator

import pytest
from argon2 import PasswordHasher

from gateway.accounts.errors import WeakPassword
from gateway.accounts.passwords import PasswordHashing, check_password_policy


@pytest.fixture
async def passwords() -> AsyncIterator[PasswordHashing]:
    hashing = PasswordHashing(workers=2)
    yield hashing
    hashing.close()


@pytest.mark.parametrize("password", ["1234567", "", "ünïcödé"])
def test_a_password_shorter_than_the_minimum_is_refused(password: str) -> None:
    with pytest.raises(WeakPassword, match="at least 8 characters"):
        check_password_policy(password, min_length=8)


def test_the_minimum_counts_characters_not_bytes() -> None:
    check_password_policy("ünïcödé!", min_length=8)


def test_the_minimum_is_configurable() -> None:
    with pytest.raises(WeakPassword, match="at least 13"):
        check_password_policy("eleven chars", min_length=13)
    check_password_policy("twelve chars", min_length=12)


def test_a_password_over_1024_bytes_is_refused_even_when_it_has_fewer_characters() -> None:
    check_password_policy("x" * 1024, min_length=8)
    with pytest.raises(WeakPassword, match="at most 1024 bytes"):
        check_password_policy("x" * 1025, min_length=8)
    with pytest.raises(WeakPassword, match="at most 1024 bytes"):
        check_password_policy("é" * 513, min_length=8)  # 513 characters, 1026 bytes


async def test_hashes_are_argon2id_with_the_rfc_9106_low_memory_parameters(
    passwords: PasswordHashing,
) -> None:
    password_hash = await passwords.hash("correct horse battery")

    assert password_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert await passwords.verify(password_hash, "correct horse battery")
    assert not await passwords.verify(password_hash, "correct horse batterY")


async def test_a_malformed_stored_hash_is_a_mismatch_not_an_error(
    passwords: PasswordHashing,
) -> None:
    assert not await passwords.verify("not-a-hash", "anything at all")
    assert passwords.needs_rehash("not-a-hash")


async def test_a_hash_made_with_weaker_parameters_needs_a_rehash(
    passwords: PasswordHashing,
) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("pw pw pw pw")

    assert passwords.needs_rehash(weak)
    assert not passwords.needs_rehash(await passwords.hash("pw pw pw pw"))
    assert await passwords.verify(weak, "pw pw pw pw")


async def test_hashing_leaves_the_event_loop_free_for_other_work(
    passwords: PasswordHashing,
) -> None:
    hashing = asyncio.ensure_future(passwords.hash("correct horse battery"))
    turns_while_hashing = 0
    while not hashing.done():
        turns_while_hashing += 1
        await asyncio.sleep(0)

    assert (await hashing).startswith("$argon2id$")
    # Had the hash run on the loop, it would have finished within its first step.
    assert turns_while_hashing > 10


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread nice values here")
async def test_hashing_threads_run_at_a_lower_cpu_priority_than_the_event_loop() -> None:
    """A login storm must not take the cores from proxied requests (docs/benchmarks.md)."""
    hashing = PasswordHashing(workers=1, niceness=7)
    loop_niceness = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    before = set(threading.enumerate())
    try:
        await hashing.hash("correct horse battery")
        # This pool's thread: other tests' pools may still have threads of the same name.
        workers = [t for t in set(threading.enumerate()) - before if t.name.startswith("argon2")]
        assert workers, "the pool started no thread"
        for thread in workers:
            assert thread.native_id is not None
            niceness = os.getpriority(os.PRIO_PROCESS, thread.native_id)
            assert niceness == min(19, loop_niceness + 7)
    finally:
        hashing.close()
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == loop_niceness
