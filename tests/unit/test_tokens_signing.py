"""Signing and verifying access tokens, and the forged tokens verification must refuse."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.settings import Settings
from gateway.tokens import (
    InvalidToken,
    KeyRing,
    ensure_keystore,
    load_keyring,
    load_keystore,
    prune_keys,
    rotate_keys,
    sign_access_token,
    verify_access_token,
)
from gateway.tokens.signing import LEEWAY_SECONDS, MAX_TOKEN_LENGTH
from tests.unit.conftest import make_settings

ISSUER = "http://127.0.0.1:8000"

ROLES = ["authenticated"]


@pytest.fixture
def ring(settings: Settings) -> KeyRing:
    return load_keyring(settings)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "73060937185904",
        "iat": now,
        "exp": now + 600,
        "sid": "session-1",
        "role": "authenticated",
        "token_type": "access_token",
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(document: dict[str, Any]) -> str:
    return b64(json.dumps(document, separators=(",", ":")).encode())


def hs256_token(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{segment(header)}.{segment(payload)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def refuse(ring: KeyRing, token: str, **kwargs: Any) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        verify_access_token(
            ring,
            token,
            issuer=kwargs.pop("issuer", ISSUER),
            allowed_roles=kwargs.pop("allowed_roles", ROLES),
            **kwargs,
        )
    assert caught.value.code == "invalid_token"
    assert caught.value.status == 401
    return caught.value


# Signing


def test_token_header_names_alg_kid_and_typ(ring: KeyRing) -> None:
    token = sign_access_token(ring, claims())

    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "kid": ring.current_kid, "typ": "JWT"}


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_every_supported_algorithm_signs_and_verifies(tmp_path: Path, alg: str) -> None:
    config = make_settings(tmp_path, signing_alg=alg)
    ensure_keystore(config)
    ring = load_keyring(config)

    token = sign_access_token(ring, claims())

    assert jwt.get_unverified_header(token)["alg"] == alg
    assert (
        verify_access_token(ring, token, issuer=ISSUER, allowed_roles=ROLES)["sub"]
        == "73060937185904"
    )


def test_a_token_without_exp_is_never_signed(ring: KeyRing) -> None:
    with pytest.raises(ValueError, match="exp"):
        sign_access_token(ring, claims(exp=None))


def test_jwks_of_the_ring_verifies_its_tokens_with_a_standard_library(ring: KeyRing) -> None:
    token = sign_access_token(ring, claims())

    key = jwt.PyJWKSet.from_json(ring.jwks_json.decode())[ring.current_kid]
    decoded = jwt.decode(token, key, algorithms=["ES256"], issuer=ISSUER)

    assert decoded["role"] == "authenticated"


def test_ring_lists_the_algorithms_of_its_keys(tmp_path: Path) -> None:
    ensure_keystore(make_settings(tmp_path, signing_alg="ES256"))
    rotate_keys(make_settings(tmp_path, signing_alg="EdDSA"))

    ring = load_keyring(make_settings(tmp_path))

    assert ring.algorithms == ("ES256", "EdDSA")


def test_ring_cannot_be_changed(ring: KeyRing) -> None:
    with pytest.raises(AttributeError):
        ring.current_kid = "someone-else"


# Rotation and pruning as verifiers see them


def test_token_signed_before_rotation_still_verifies_after_it(settings: Settings) -> None:
    token = sign_access_token(load_keyring(settings), claims())

    rotate_keys(settings)
    after_one = load_keyring(settings)
    rotate_keys(settings)
    after_two = load_keyring(settings)

    assert (
        verify_access_token(after_one, token, issuer=ISSUER, allowed_roles=ROLES)["sub"]
        == "73060937185904"
    )
    assert (
        verify_access_token(after_two, token, issuer=ISSUER, allowed_roles=ROLES)["sub"]
        == "73060937185904"
    )


def test_rotation_signs_with_the_key_that_was_published_as_next(settings: Settings) -> None:
    before = load_keyring(settings)
    upcoming = load_keystore(settings).manifest.next.kid

    rotate_keys(settings)
    token = sign_access_token(load_keyring(settings), claims())

    assert jwt.get_unverified_header(token)["kid"] == upcoming
    # A gateway worker that has not reloaded yet verifies it: it already holds the next key.
    assert (
        verify_access_token(before, token, issuer=ISSUER, allowed_roles=ROLES)["sub"]
        == "73060937185904"
    )


def test_tokens_of_a_pruned_key_are_refused(settings: Settings) -> None:
    token = sign_access_token(load_keyring(settings), claims())
    rotate_keys(settings)

    prune_keys(settings, force=True)

    refuse(load_keyring(settings), token)


def test_verification_reads_no_file_and_an_unknown_kid_triggers_no_reload(
    settings: Settings, ring: KeyRing
) -> None:
    token = sign_access_token(ring, claims())
    stranger = forged_with_unknown_key(ring)
    shutil.rmtree(settings.keys_dir)

    refuse(ring, stranger)
    assert (
        verify_access_token(ring, token, issuer=ISSUER, allowed_roles=ROLES)["sub"]
        == "73060937185904"
    )


# Claims


def test_a_token_expired_beyond_the_leeway_is_refused(ring: KeyRing) -> None:
    now = int(time.time())
    token = sign_access_token(ring, claims(iat=now - 900, exp=now - LEEWAY_SECONDS - 1))

    assert "expired" in refuse(ring, token).message


def test_a_token_expired_within_the_leeway_is_accepted(ring: KeyRing) -> None:
    now = int(time.time())
    token = sign_access_token(ring, claims(iat=now - 900, exp=now - LEEWAY_SECONDS + 5))

    assert (
        verify_access_token(ring, token, issuer=ISSUER, allowed_roles=ROLES)["exp"]
        == now - LEEWAY_SECONDS + 5
    )


def test_a_token_issued_in_the_future_beyond_the_leeway_is_refused(ring: KeyRing) -> None:
    now = int(time.time())
    token = sign_access_token(ring, claims(iat=now + LEEWAY_SECONDS + 60, exp=now + 900))

    refuse(ring, token)


def test_a_token_without_exp_is_refused(ring: KeyRing) -> None:
    token = jwt.encode(
        claims(exp=None),
        load_private_key(ring),
        algorithm="ES256",
        headers={"kid": ring.current_kid},
    )

    assert "required claim" in refuse(ring, token).message


def test_a_token_without_iat_is_refused(ring: KeyRing) -> None:
    token = jwt.encode(
        claims(iat=None),
        load_private_key(ring),
        algorithm="ES256",
        headers={"kid": ring.current_kid},
    )

    assert "required claim" in refuse(ring, token).message


def test_a_token_from_another_issuer_is_refused(ring: KeyRing) -> None:
    token = sign_access_token(ring, claims(iss="https://evil.example"))

    refuse(ring, token)


def test_a_token_without_issuer_is_refused(ring: KeyRing) -> None:
    token = sign_access_token(ring, claims(iss=None))

    refuse(ring, token)


def test_a_configured_audience_must_be_in_the_token(ring: KeyRing) -> None:
    with_aud = sign_access_token(ring, claims(aud="postgrest"))
    without_aud = sign_access_token(ring, claims())
    other_aud = sign_access_token(ring, claims(aud="billing"))

    assert verify_access_token(
        ring, with_aud, issuer=ISSUER, audience="postgrest", allowed_roles=ROLES
    )["aud"]
    refuse(ring, without_aud, audience="postgrest")
    refuse(ring, other_aud, audience="postgrest")


def test_a_token_with_an_audience_is_refused_when_none_is_configured(ring: KeyRing) -> None:
    token = sign_access_token(ring, claims(aud="postgrest"))

    assert "audience" in refuse(ring, token).message


def test_the_error_never_echoes_the_tokens_claims(ring: KeyRing) -> None:
    marker = "<script>leak-me</script>"
    token = sign_access_token(ring, claims(iss=marker, sub=marker, role=marker))

    error = refuse(ring, token)

    assert "leak-me" not in error.message
    assert "leak-me" not in str(error)


# Forged tokens


def load_private_key(ring: KeyRing) -> ec.EllipticCurvePrivateKey:
    key = ring._signing_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def forged_with_unknown_key(ring: KeyRing) -> str:
    stranger = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims(), stranger, algorithm="ES256", headers={"kid": "x" * 43})


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_an_unsigned_token_is_refused_whatever_the_letter_case_of_none(
    ring: KeyRing, alg: str
) -> None:
    header = {"alg": alg, "kid": ring.current_kid, "typ": "JWT"}
    for signature in ("", b64(b"x")):
        token = f"{segment(header)}.{segment(claims(role='postgres'))}.{signature}"

        refuse(ring, token)


def public_key_pem(ring: KeyRing) -> bytes:
    return (
        load_private_key(ring)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def public_jwk_json(ring: KeyRing) -> bytes:
    jwk = next(jwk for jwk in ring.jwks["keys"] if jwk["kid"] == ring.current_kid)
    return json.dumps(jwk).encode()


@pytest.mark.parametrize(
    "secret",
    [public_key_pem, public_jwk_json, lambda ring: ring.jwks_json],
    ids=["public-key-pem", "public-jwk-json", "jwks-file"],
)
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512", "hs256"])
def test_an_hmac_token_keyed_with_our_public_key_is_refused(
    ring: KeyRing, secret: Any, alg: str
) -> None:
    token = hs256_token(
        {"alg": alg, "kid": ring.current_kid, "typ": "JWT"},
        claims(role="postgres"),
        secret(ring),
    )

    refuse(ring, token)


@pytest.mark.parametrize("alg", ["ES384", "ES512", "RS256", "PS256", "EdDSA", "es256"])
def test_an_algorithm_other_than_the_keys_own_is_refused(ring: KeyRing, alg: str) -> None:
    good = sign_access_token(ring, claims())
    _, payload, signature = good.split(".")
    header = {"alg": alg, "kid": ring.current_kid, "typ": "JWT"}

    refuse(ring, f"{segment(header)}.{payload}.{signature}")


def test_a_token_signed_by_an_unknown_key_is_refused(ring: KeyRing) -> None:
    assert (
        "not signed by a key of this gateway" in refuse(ring, forged_with_unknown_key(ring)).message
    )


def test_a_token_without_kid_is_refused(ring: KeyRing) -> None:
    token = jwt.encode(claims(), load_private_key(ring), algorithm="ES256")

    refuse(ring, token)


@pytest.mark.parametrize("kid", ["../../etc/passwd", "/etc/passwd", "", 42, None])
def test_a_token_whose_kid_is_not_one_of_ours_is_refused(ring: KeyRing, kid: Any) -> None:
    signing_input = f"{segment({'alg': 'ES256', 'kid': kid})}.{segment(claims())}"
    token = jwt.encode(claims(), load_private_key(ring), algorithm="ES256", headers={"kid": "x"})
    signature = token.rsplit(".", 1)[1]

    refuse(ring, f"{signing_input}.{signature}")


def test_a_token_with_a_tampered_payload_is_refused(ring: KeyRing) -> None:
    header, _, signature = sign_access_token(ring, claims()).split(".")
    escalated = segment(claims(role="postgres"))

    assert "signature" in refuse(ring, f"{header}.{escalated}.{signature}").message


def test_a_token_longer_than_8_kib_is_refused_before_parsing(ring: KeyRing) -> None:
    token = sign_access_token(ring, claims(padding="a" * MAX_TOKEN_LENGTH))

    assert "too long" in refuse(ring, token).message


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "....", "é.é.é"])
def test_garbage_is_refused(ring: KeyRing, token: str) -> None:
    refuse(ring, token)


def test_a_token_with_another_typ_is_refused(ring: KeyRing) -> None:
    token = jwt.encode(
        claims(),
        load_private_key(ring),
        algorithm="ES256",
        headers={"kid": ring.current_kid, "typ": "dpop+jwt"},
    )

    refuse(ring, token)


def test_a_token_issued_by_a_ring_in_the_past_verifies_with_claims_intact(
    settings: Settings,
) -> None:
    issued = datetime.now(UTC) - timedelta(minutes=5)
    token = sign_access_token(
        load_keyring(settings),
        claims(iat=issued, exp=issued + timedelta(hours=1), user={"user_id": 2**53 - 1}),
    )

    decoded = verify_access_token(load_keyring(settings), token, issuer=ISSUER, allowed_roles=ROLES)

    assert decoded["user"] == {"user_id": 2**53 - 1}
    assert decoded["iat"] == int(issued.timestamp())


@pytest.mark.parametrize(
    ("what", "overrides"),
    [
        ("another token_type", {"token_type": "refresh_token"}),
        ("the doctor probe's token_type", {"token_type": "doctor_probe"}),
        ("no token_type", {"token_type": None}),
        ("no sid", {"sid": None}),
        ("an empty sid", {"sid": ""}),
        ("a sid that is not a string", {"sid": 7}),
        ("no sub", {"sub": None}),
        ("a sub that is not a string", {"sub": 73060937185904}),
        ("no role", {"role": None}),
        ("a role off the allow-list", {"role": "postgres"}),
        ("a role that is not a string", {"role": ["authenticated"]}),
    ],
)
def test_a_signed_token_that_is_not_a_users_access_token_is_refused(
    ring: KeyRing, what: str, overrides: dict[str, Any]
) -> None:
    token = sign_access_token(ring, claims(**overrides))

    refuse(ring, token)


def test_a_role_taken_off_the_allow_list_is_refused_in_a_token_issued_before(
    ring: KeyRing,
) -> None:
    token = sign_access_token(ring, claims(role="reporting"))
    assert verify_access_token(
        ring, token, issuer=ISSUER, allowed_roles=["authenticated", "reporting"]
    )

    refuse(ring, token, allowed_roles=["authenticated"])
