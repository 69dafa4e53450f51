"""The key lifecycle's decisions, shared by the directory and the database keystores.

Pure functions of a manifest, its keys and a moment: where the keys live is the caller's
business. Each backend reads its keystore, asks these what the change is, and writes it back in
its own commit (a manifest rename, a store transaction).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Final

from gateway.tokens._stored import StoredKey
from gateway.tokens.algorithms import SigningAlgorithm
from gateway.tokens.errors import RotationRefused
from gateway.tokens.manifest import KeyRecord, Manifest

#: A token is accepted up to 30 s past its ``exp`` (PostgREST's clock-skew leeway, which
#: ``verify_access_token`` shares), so a retiring key is kept that much longer than the token
#: lifetime. The same margin covers a worker that keeps signing with the old key until its
#: watcher notices the rotation (at most a second or two).
PRUNE_MARGIN: Final = timedelta(seconds=30)

#: A next key must have been published this many JWKS max-ages before it may sign.
NEXT_KEY_MIN_AGE_FACTOR = 2


def moment(now: datetime | None) -> datetime:
    """``now`` (default: the clock) in UTC to the second: a manifest keeps whole seconds, so a
    written manifest equals the one read back."""
    return (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)


def first_keys(alg: SigningAlgorithm, *, now: datetime) -> tuple[StoredKey, StoredKey]:
    """A new keystore's keys: a ``current`` one and a ``next`` one."""
    first = StoredKey.generate(alg, now=now)
    current = StoredKey.of(
        replace(first.record, state="current", activated_at=now), first.private_key
    )
    return current, StoredKey.generate(alg, now=now)


def check_rotation(manifest: Manifest, *, now: datetime, jwks_max_age: int, force: bool) -> None:
    """Refuse a rotation whose next key verifiers may not know yet.

    Twice the cache lifetime: a verifier that fetched the JWKS just before the next key appeared
    still has a stale copy for up to one max-age; the second is the margin that keeps the
    advertised max-age "well under" the wait.

    Raises:
        RotationRefused: the next key is younger than twice ``jwks_max_age`` and not ``force``.
    """
    upcoming = manifest.next
    age = now - upcoming.created_at
    wait = timedelta(seconds=NEXT_KEY_MIN_AGE_FACTOR * jwks_max_age) - age
    if not force and wait > timedelta(0):
        raise RotationRefused(
            f"the next key {upcoming.kid} was created {_seconds(age)} s ago and verifiers "
            f"may cache the JWKS for {jwks_max_age} s (GATEWAY_JWKS_MAX_AGE; a next "
            f"key waits {NEXT_KEY_MIN_AGE_FACTOR}x that): "
            f"rotate again in {_seconds(wait)} s, or use --force once every verifier has "
            "reloaded the JWKS"
        )


def rotated(
    manifest: Manifest, keys: tuple[StoredKey, ...], fresh: StoredKey, *, now: datetime
) -> tuple[Manifest, tuple[StoredKey, ...]]:
    """The manifest and keys after a rotation that makes ``fresh`` the next key."""
    new_manifest = manifest.rotated(fresh.record, now=now)
    private_keys = {key.kid: key.private_key for key in (*keys, fresh)}
    return new_manifest, tuple(
        StoredKey.of(record, private_keys[record.kid]) for record in new_manifest.keys
    )


def due_for_pruning(
    manifest: Manifest, *, now: datetime, access_token_ttl: int, force: bool
) -> tuple[KeyRecord, ...]:
    """The retiring keys no live token can need any more (every retiring key with ``force``).

    A key retired at ``t`` signed tokens that expire by ``t + access_token_ttl``; verifiers
    accept them for :data:`PRUNE_MARGIN` longer. Only then is the key dropped.
    """
    keep_for = timedelta(seconds=access_token_ttl) + PRUNE_MARGIN
    return tuple(
        key
        for key in manifest.retiring
        if force or (key.retired_at is not None and key.retired_at + keep_for <= now)
    )


def _seconds(delta: timedelta) -> int:
    return max(0, round(delta.total_seconds()))
