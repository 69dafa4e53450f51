"""``kill -9`` of a key rotation at random moments: the keystore always loads and verifies.

An interpreter start of ``python -m gateway keys rotate`` costs two to four seconds here (the
CLI imports the whole application), nearly all of it before the first write, so 50 killed CLI
runs would take minutes and rarely hit a write. The rotation runs instead in a forked child
that calls :func:`gateway.tokens.rotate_keys`, the CLI's own code path, in a loop, and is
SIGKILLed at a random moment spread over that loop's measured runtime.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.settings import Settings
from gateway.tokens import (
    KeyRing,
    ensure_keystore,
    load_keyring,
    prune_keys,
    rotate_keys,
    sign_access_token,
    verify_access_token,
)
from tests.faults.conftest import kid_of

KILLS = 50
ROTATIONS_PER_CHILD = 3
PRUNE_ABOVE = 8  # retiring keys; keeps each load (and the test) fast
ISSUER = "http://gateway.test"
SEED = 20261125


def rotate_until_killed(keys_dir: str) -> None:
    settings = Settings(keys_dir=keys_dir)
    for _ in range(ROTATIONS_PER_CHILD):
        rotate_keys(settings, force=True)
    os._exit(0)


def signed(ring: KeyRing) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": "1",
        "sid": "session-1",
        "role": "authenticated",
        "token_type": "access_token",
        "iss": ISSUER,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
    }
    return sign_access_token(ring, claims)


def test_rotation_killed_with_sigkill_at_random_moments_50_times_keeps_every_token_verifying(
    tmp_path: Path,
) -> None:
    settings = Settings(keys_dir=str(tmp_path / "keys"))
    ensure_keystore(settings)
    fork = multiprocessing.get_context("fork")

    started = time.monotonic()
    child = fork.Process(target=rotate_until_killed, args=(settings.keys_dir,))
    child.start()
    child.join(timeout=30)
    assert child.exitcode == 0
    runtime = time.monotonic() - started  # one whole run, fork included

    rng = random.Random(SEED)
    tokens = [signed(load_keyring(settings))]
    interrupted = 0
    mid_write = 0  # kills that left a temp file, a stray key file or a stale jwks.json
    for attempt in range(KILLS):
        child = fork.Process(target=rotate_until_killed, args=(settings.keys_dir,))
        child.start()
        time.sleep(rng.uniform(0, runtime))
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGKILL)
            interrupted += 1
        child.join(timeout=30)
        assert child.exitcode is not None

        mid_write += left_traces(tmp_path / "keys")
        ring = load_keyring(settings)  # loads after every kill
        for token in tokens:
            verify_access_token(ring, token, issuer=ISSUER, allowed_roles=["authenticated"])
        published = {
            key["kid"] for key in json.loads((tmp_path / "keys" / "jwks.json").read_text())["keys"]
        }
        missing = {kid_of(token) for token in tokens} - published
        assert not missing, f"after kill {attempt}: jwks.json lacks {missing}"
        tokens.append(signed(ring))

        if len(ring.kids) > PRUNE_ABOVE + 2:
            pruned = {key.kid for key in prune_keys(settings, force=True)}
            tokens = [token for token in tokens if kid_of(token) not in pruned]

    assert interrupted >= KILLS // 2, f"only {interrupted} of {KILLS} runs were interrupted"
    assert mid_write > 0, "no kill landed in the middle of a write"


def left_traces(keys: Path) -> bool:
    """Whether an interrupted write shows: a temp file, a key file the manifest does not name,
    or a jwks.json that differs from the manifest's keys."""
    named = {key["kid"] for key in json.loads((keys / "manifest.json").read_text())["keys"]}
    published = {key["kid"] for key in json.loads((keys / "jwks.json").read_text())["keys"]}
    files = [path.name for path in keys.iterdir()]
    temp = any(name.endswith(".tmp") for name in files)
    stray = {name.removesuffix(".pem") for name in files if name.endswith(".pem")} - named
    return temp or bool(stray) or published != named
