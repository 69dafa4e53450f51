"""The anon key: what verifies as one, what never does, and what a pruned one is told."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import Settings
from gateway.tokens import (
    AnonKeyRetired,
    InvalidToken,
    KeyRing,
    ensure_keystore,
    is_anon_key,
    load_keyring,
    prune_keys,
    rotate_keys,
    sign_access_token,
    sign_anon_key,
    verify_access_token,
    verify_bearer_token,
)
from tests.unit.conftest import make_settings

ROLES = ["authenticated"]


def verify(ring: KeyRing, token: str, settings: Settings) -> dict[str, Any]:
    return verify_bearer_token(
        ring, token, issuer=settings.issuer, allowed_roles=ROLES, anon_role=settings.anon_role
    )


def now() -> int:
    return int(time.time())


def test_an_anon_key_verifies_as_one_and_names_nobody(settings: Settings) -> None:
    ring = load_keyring(settings)

    claims = verify(ring, sign_anon_key(ring, settings, now=now()), settings)

    assert is_anon_key(claims)
    assert claims["role"] == "anon"
    assert "sub" not in claims
    assert "sid" not in claims
    assert claims["exp"] - claims["iat"] >= 5 * 365 * 24 * 3600


def test_an_anon_key_is_never_an_access_token(settings: Settings) -> None:
    ring = load_keyring(settings)
    key = sign_anon_key(ring, settings, now=now())

    with pytest.raises(InvalidToken):
        verify_access_token(ring, key, issuer=settings.issuer, allowed_roles=["anon", *ROLES])


def test_a_user_token_is_never_taken_for_an_anon_key(settings: Settings) -> None:
    ring = load_keyring(settings)
    token = sign_access_token(
        ring,
        {"iss": settings.issuer, "sub": "7", "sid": "s", "iat": now(), "exp": now() + 60,
         "role": "authenticated", "token_type": "access_token"},
    )  # fmt: skip

    assert not is_anon_key(verify(ring, token, settings))


@pytest.mark.parametrize(
    "extra",
    [{"role": "authenticated"}, {"role": "postgres"}, {"sub": "7"}, {"sid": "s"}],
)
def test_an_anon_typed_token_with_a_role_or_a_user_is_refused(
    settings: Settings, extra: dict[str, Any]
) -> None:
    ring = load_keyring(settings)
    claims = {"iss": settings.issuer, "iat": now(), "exp": now() + 60, "role": "anon",
              "token_type": "anon_key", **extra}  # fmt: skip

    with pytest.raises(InvalidToken):
        verify(ring, sign_access_token(ring, claims), settings)


def test_an_anon_key_of_another_keystore_is_refused(settings: Settings, tmp_path: Path) -> None:
    other = make_settings(tmp_path / "other")
    ensure_keystore(other)
    forged = sign_anon_key(load_keyring(other), other, now=now())

    with pytest.raises(InvalidToken):
        verify(load_keyring(settings), forged, settings)


def test_an_anon_key_survives_a_rotation_and_is_refused_as_retired_once_pruned(
    settings: Settings,
) -> None:
    key = sign_anon_key(load_keyring(settings), settings, now=now())

    rotate_keys(settings, force=True)
    assert is_anon_key(verify(load_keyring(settings), key, settings))
    prune_keys(settings, force=True)

    with pytest.raises(AnonKeyRetired) as refused:
        verify(load_keyring(settings), key, settings)
    assert refused.value.code == "anon_key_retired"
    assert refused.value.status == 401
    assert "gateway keys anon-key" in refused.value.message


def test_a_garbage_token_is_an_invalid_token_not_a_retired_anon_key(settings: Settings) -> None:
    with pytest.raises(InvalidToken) as refused:
        verify(load_keyring(settings), "not.a.token", settings)

    assert not isinstance(refused.value, AnonKeyRetired)
