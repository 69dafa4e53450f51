"""A rotation that dies half-way, and rotations racing each other, leave a usable keystore.

Crashes are real: a child process runs the rotation and ``os._exit``s at a chosen write, so no
``finally`` block or rollback runs, exactly as with a kill or a power loss. A failing disk is
injected: ``os.fsync`` of the keys directory raises EIO right after a chosen rename.
"""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import os
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest

from gateway.settings import Settings
from gateway.tokens import (
    KeystoreUnwritable,
    ensure_keystore,
    load_keyring,
    load_keystore,
    prune_keys,
    read_manifest,
    render_jwks,
    rotate_keys,
    sign_access_token,
    verify_access_token,
)
from tests.unit.conftest import make_settings

ISSUER = "http://127.0.0.1:8000"

# Runs one rotation and dies (exit code 17) when it is about to write, or to rename, the file
# named on the command line.
CRASHING_ROTATION = textwrap.dedent(
    """
    import os, sys
    from gateway.settings import Settings
    from gateway.tokens import _atomic, _writing, keystore

    keys_dir, target, moment = sys.argv[1:]
    real_write, real_replace = _writing.write_atomic, os.replace

    def write_then_crash(path, data, *, mode):
        if path.name == target and moment == "before-write":
            os._exit(17)
        real_write(path, data, mode=mode)

    def rename_then_crash(source, destination):
        if os.path.basename(destination) == target and moment == "before-rename":
            os._exit(17)
        real_replace(source, destination)

    _writing.write_atomic = write_then_crash
    _atomic.os.replace = rename_then_crash
    keystore.rotate_keys(Settings(keys_dir=keys_dir, jwks_max_age=0))
    """
)


def claims() -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "sub": "1",
        "sid": "session-1",
        "iat": now,
        "exp": now + 600,
        "role": "authenticated",
        "token_type": "access_token",
    }


def crash_rotation(settings: Settings, *, target: str, moment: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CRASHING_ROTATION, settings.keys_dir, target, moment],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 17, result.stderr


def verifies_with_jwks_file(settings: Settings, token: str) -> bool:
    """What PostgREST does: verify with the key of jwks.json that the token's kid names."""
    jwks = jwt.PyJWKSet.from_json((Path(settings.keys_dir) / "jwks.json").read_text())
    kid = jwt.get_unverified_header(token)["kid"]
    try:
        key = jwks[kid]
        jwt.decode(token, key, algorithms=[key.algorithm_name], issuer=ISSUER)
    except (KeyError, jwt.PyJWTError):
        return False
    return True


CRASH_POINTS = [
    pytest.param("manifest.json", "before-write", id="after-the-key-file-before-the-manifest"),
    pytest.param("manifest.json", "before-rename", id="while-writing-the-manifest"),
    pytest.param("jwks.json", "before-write", id="after-the-manifest-before-the-jwks"),
    pytest.param("jwks.json", "before-rename", id="while-writing-the-jwks"),
]


@pytest.mark.parametrize(("target", "moment"), CRASH_POINTS)
def test_an_interrupted_rotation_leaves_a_keystore_that_loads_and_verifies_old_tokens(
    tmp_path: Path, target: str, moment: str
) -> None:
    settings = make_settings(tmp_path)
    ensure_keystore(settings)
    token = sign_access_token(load_keyring(settings), claims())

    crash_rotation(settings, target=target, moment=moment)

    ring = load_keyring(settings)
    assert (
        verify_access_token(ring, token, issuer=ISSUER, allowed_roles=["authenticated"])["sub"]
        == "1"
    )
    assert verifies_with_jwks_file(settings, token)
    # Tokens the (possibly rotated) keystore signs now verify with jwks.json too.
    assert verifies_with_jwks_file(settings, sign_access_token(ring, claims()))


@pytest.mark.parametrize(("target", "moment"), CRASH_POINTS)
def test_the_next_write_after_an_interrupted_rotation_cleans_up(
    tmp_path: Path, target: str, moment: str
) -> None:
    settings = make_settings(tmp_path)
    ensure_keystore(settings)
    crash_rotation(settings, target=target, moment=moment)

    manifest = rotate_keys(settings)

    directory = Path(settings.keys_dir)
    on_disk = {path.name for path in directory.iterdir()} - {".lock"}
    assert on_disk == {"manifest.json", "jwks.json"} | {f"{key.kid}.pem" for key in manifest.keys}
    assert (directory / "jwks.json").read_bytes() == render_jwks(load_keystore(settings).jwks())


def test_a_rotation_interrupted_before_the_manifest_changed_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    ensure_keystore(settings)
    before = read_manifest(settings)

    crash_rotation(settings, target="manifest.json", moment="before-rename")

    assert read_manifest(settings) == before


def test_a_rotation_interrupted_after_the_manifest_is_done(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    ensure_keystore(settings)
    before = read_manifest(settings)

    crash_rotation(settings, target="jwks.json", moment="before-write")

    assert read_manifest(settings).current.kid == before.next.kid


def test_ensure_keystore_repairs_a_jwks_file_left_stale_by_a_crash(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    ensure_keystore(settings)
    crash_rotation(settings, target="jwks.json", moment="before-write")

    ensure_keystore(settings)

    jwks = json.loads((Path(settings.keys_dir) / "jwks.json").read_bytes())
    assert {jwk["kid"] for jwk in jwks["keys"]} == {key.kid for key in read_manifest(settings).keys}


def test_two_rotations_interrupted_at_the_jwks_write_never_leave_the_signing_key_unpublished(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    ensure_keystore(settings)
    crash_rotation(settings, target="jwks.json", moment="before-write")  # jwks.json left stale

    crash_rotation(settings, target="jwks.json", moment="before-write")

    jwks = json.loads((Path(settings.keys_dir) / "jwks.json").read_bytes())
    assert read_manifest(settings).current.kid in {jwk["kid"] for jwk in jwks["keys"]}


# A directory fsync that fails after a rename


def fail_directory_sync_after_renaming(
    monkeypatch: pytest.MonkeyPatch, renamed: Callable[[str], bool]
) -> None:
    """Make the fsync of a directory raise EIO when the last rename's target matches."""
    real_replace, real_fsync = os.replace, os.fsync
    last_target: list[str] = [""]

    def replace(source: Any, destination: Any) -> None:
        real_replace(source, destination)
        last_target[0] = os.path.basename(destination)

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode) and renamed(last_target[0]):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "fsync", fsync)


def assert_loads_with_every_named_key(settings: Settings) -> None:
    manifest = read_manifest(settings)
    directory = Path(settings.keys_dir)
    assert all((directory / f"{key.kid}.pem").is_file() for key in manifest.keys)
    assert load_keystore(settings).manifest == manifest


def jwks_matches_the_manifest(settings: Settings) -> bool:
    jwks = (Path(settings.keys_dir) / "jwks.json").read_bytes()
    return jwks == render_jwks(load_keystore(settings).jwks())


def test_a_failed_directory_sync_after_the_manifest_rename_keeps_the_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path)
    ensure_keystore(settings)
    before = read_manifest(settings)
    fail_directory_sync_after_renaming(monkeypatch, lambda name: name == "manifest.json")

    with caplog.at_level(logging.WARNING, logger="gateway.tokens.keystore"):
        manifest = rotate_keys(settings)

    assert manifest.current.kid == before.next.kid
    assert read_manifest(settings) == manifest
    assert_loads_with_every_named_key(settings)
    assert jwks_matches_the_manifest(settings)
    assert "manifest.json" in caplog.text
    assert "power loss" in caplog.text


def test_a_failed_directory_sync_after_the_jwks_rename_keeps_the_rotation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path)
    ensure_keystore(settings)
    before = read_manifest(settings)
    fail_directory_sync_after_renaming(monkeypatch, lambda name: name == "jwks.json")

    with caplog.at_level(logging.WARNING, logger="gateway.tokens.keystore"):
        manifest = rotate_keys(settings)

    assert manifest.current.kid == before.next.kid
    assert_loads_with_every_named_key(settings)
    assert jwks_matches_the_manifest(settings)
    assert "jwks.json" in caplog.text


def test_a_failed_directory_sync_after_the_key_file_rename_leaves_the_keystore_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)
    ensure_keystore(settings)
    before = read_manifest(settings)
    fail_directory_sync_after_renaming(monkeypatch, lambda name: name.endswith(".pem"))

    with pytest.raises(KeystoreUnwritable, match="left unchanged"):
        rotate_keys(settings)

    assert read_manifest(settings) == before
    pem_files = {path.name for path in Path(settings.keys_dir).glob("*.pem")}
    assert pem_files == {f"{key.kid}.pem" for key in before.keys}


def test_a_power_loss_that_undoes_an_unsynced_prune_still_finds_every_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)
    ensure_keystore(settings)
    rotate_keys(settings)
    manifest_path = Path(settings.keys_dir) / "manifest.json"
    before_prune = manifest_path.read_bytes()
    fail_directory_sync_after_renaming(monkeypatch, lambda name: name == "manifest.json")

    assert prune_keys(settings, force=True)
    monkeypatch.undo()
    manifest_path.write_bytes(before_prune)  # the rename the failed fsync did not make durable

    assert_loads_with_every_named_key(settings)


# Concurrent rotations

ROTATIONS_PER_PROCESS = 8


def rotate_many(keys_dir: str, start: Any) -> None:
    """Child process: wait for the others, then rotate as fast as possible."""
    settings = Settings(keys_dir=keys_dir, jwks_max_age=0)
    start.wait()
    for _ in range(ROTATIONS_PER_PROCESS):
        rotate_keys(settings)


def test_concurrent_rotations_in_two_processes_serialise(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    ensure_keystore(settings)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    workers = [
        context.Process(target=rotate_many, args=(settings.keys_dir, start)) for _ in range(2)
    ]

    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)

    assert [worker.exitcode for worker in workers] == [0, 0]
    manifest = read_manifest(settings)
    assert [key.state for key in manifest.keys].count("current") == 1
    assert [key.state for key in manifest.keys].count("next") == 1
    # No rotation was lost: each one retired a key (an unlocked race would drop some).
    assert len(manifest.retiring) == 2 * ROTATIONS_PER_PROCESS
    store = load_keystore(settings)
    assert len(store.keys) == 2 + 2 * ROTATIONS_PER_PROCESS
    pem_files = {path.name for path in Path(settings.keys_dir).glob("*.pem")}
    assert pem_files == {f"{key.kid}.pem" for key in manifest.keys}
    assert (Path(settings.keys_dir) / "jwks.json").read_bytes() == render_jwks(store.jwks())
