"""A full disk or a read-only keys directory during ``gateway keys rotate``.

The keys directory lives on a tmpfs of 64 KiB mounted for the test: the tests run as root, for
whom permission bits do not stop a write, but a full or read-only file system does. (An
``RLIMIT_FSIZE`` limit, EFBIG, is covered by tests/integration/test_keys_cli.py.)
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import run_cli

PAGE = 4096


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.iterdir() if path.is_file()}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(
            f"these tests mount a small tmpfs and need the privilege to: {mounted.stderr.strip()}",
            pytrace=False,
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)


@pytest.fixture
def keystore_env(small_disk: Path) -> dict[str, str]:
    env = {"GATEWAY_KEYS_DIR": str(small_disk / "keys")}
    created = run_cli(env, small_disk, "keys", "init")
    assert created.returncode == 0, created.stderr
    return env


def fill(disk: Path, leave_pages: int) -> None:
    """Fill ``disk`` up, then give back ``leave_pages`` pages of room."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * PAGE)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave_pages * PAGE))


def assert_refused_in_one_line(result: subprocess.CompletedProcess[str], reason: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stderr.startswith("gateway: error:"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert reason in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("leave_pages", "failing_file"),
    [(0, ".pem:"), (1, "manifest.json:")],
    ids=["no room even for the new key file", "room for the key file but not the manifest"],
)
def test_a_full_disk_during_rotation_fails_in_one_line_and_keeps_the_old_keys(
    keystore_env: dict[str, str], small_disk: Path, leave_pages: int, failing_file: str
) -> None:
    keys = Path(keystore_env["GATEWAY_KEYS_DIR"])
    before = snapshot(keys)
    fill(small_disk, leave_pages)

    result = run_cli(keystore_env, small_disk, "keys", "rotate", "--force")

    assert_refused_in_one_line(result, "the disk is full")
    assert failing_file in result.stderr
    assert "left unchanged" in result.stderr
    assert snapshot(keys) == before
    (small_disk / "filler").unlink()
    listed = run_cli(keystore_env, small_disk, "keys", "list")
    assert listed.returncode == 0, listed.stderr


def test_a_read_only_keys_directory_refuses_rotation_in_one_line_and_keeps_the_old_keys(
    keystore_env: dict[str, str], small_disk: Path
) -> None:
    keys = Path(keystore_env["GATEWAY_KEYS_DIR"])
    before = snapshot(keys)
    remounted = subprocess.run(
        ["mount", "-o", "remount,ro", str(small_disk)], capture_output=True, text=True, check=False
    )
    assert remounted.returncode == 0, remounted.stderr

    result = run_cli(keystore_env, small_disk, "keys", "rotate", "--force", timeout=20)

    assert_refused_in_one_line(result, "the file system is read-only")
    assert snapshot(keys) == before
    listed = run_cli(keystore_env, small_disk, "keys", "list")
    assert listed.returncode == 0, listed.stderr
