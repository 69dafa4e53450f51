"""A running gateway picks up a rotation made elsewhere, and survives a damaged keystore."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path

import pytest

from gateway.settings import Settings
from gateway.tokens import (
    KeyRingHolder,
    KeystoreMissing,
    read_manifest,
    rotate_keys,
)
from tests.support.cli import cli_stdout
from tests.support.waiting import wait_for_async
from tests.unit.conftest import make_settings

# A rotation must be in service this soon after the command that made it returns.
PICKUP_DEADLINE_SECONDS = 2.0


def rotate_in_another_process(settings: Settings) -> str:
    env = {"GATEWAY_KEYS_DIR": settings.keys_dir}
    output = cli_stdout(env, None, "keys", "rotate", "--force", "--json")
    current: str = json.loads(output)["current"]
    return current


async def wait_for_current_kid(holder: KeyRingHolder, kid: str) -> bool:
    return await wait_for_async(lambda: holder.ring.current_kid == kid, PICKUP_DEADLINE_SECONDS)


async def test_watcher_picks_up_a_rotation_made_by_another_process(settings: Settings) -> None:
    async with KeyRingHolder(settings) as holder:
        before = holder.ring

        new_current = await asyncio.to_thread(rotate_in_another_process, settings)

        assert await wait_for_current_kid(holder, new_current)
        assert before.current_kid in holder.ring.kids
        assert holder.ring is not before


async def test_watcher_keeps_the_previous_ring_while_the_manifest_is_damaged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    holder = KeyRingHolder(settings)
    await holder.start()
    try:
        before = holder.ring
        manifest = Path(settings.keys_dir) / "manifest.json"
        good = manifest.read_bytes()
        half = manifest.with_name("half")
        half.write_bytes(good[: len(good) // 2])
        os.replace(half, manifest)

        with caplog.at_level(logging.WARNING, logger="gateway.tokens.watcher"):
            results = [await holder.refresh() for _ in range(3)]

        assert results == [False, False, False]
        assert holder.ring is before
        assert len(caplog.records) == 1
        assert "keeping the previous signing keys" in caplog.records[0].getMessage()
    finally:
        await holder.stop()


async def test_watcher_recovers_once_the_keystore_is_whole_again(settings: Settings) -> None:
    holder = KeyRingHolder(settings)
    await holder.start()
    try:
        manifest = Path(settings.keys_dir) / "manifest.json"
        good = manifest.read_bytes()
        manifest.write_bytes(b"{")
        assert await holder.refresh() is False

        manifest.write_bytes(good)
        await asyncio.to_thread(rotate_keys, settings)

        assert await holder.refresh() is True
        assert holder.ring.current_kid == read_manifest(settings).current.kid
    finally:
        await holder.stop()


async def test_watcher_keeps_serving_when_the_keys_dir_disappears(settings: Settings) -> None:
    holder = KeyRingHolder(settings)
    await holder.start()
    try:
        before = holder.ring
        await asyncio.to_thread(os.rename, settings.keys_dir, f"{settings.keys_dir}-moved")

        assert await holder.refresh() is False
        assert holder.ring is before
    finally:
        await holder.stop()


async def test_watcher_does_not_reload_an_unchanged_manifest(settings: Settings) -> None:
    async with KeyRingHolder(settings) as holder:
        assert await holder.refresh() is False


async def test_watcher_refuses_to_start_without_a_keystore(tmp_path: Path) -> None:
    holder = KeyRingHolder(make_settings(tmp_path))

    with pytest.raises(KeystoreMissing):
        await holder.start()


async def test_stopping_the_watcher_ends_its_task(settings: Settings) -> None:
    holder = KeyRingHolder(settings)
    await holder.start()
    tasks_before = {task.get_name() for task in asyncio.all_tasks()}

    await holder.stop()

    assert "gateway-keyring-watcher" in tasks_before
    assert "gateway-keyring-watcher" not in {task.get_name() for task in asyncio.all_tasks()}
