"""The keystore: layout, lifecycle (create, rotate, prune), encryption and refusals."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from gateway.settings import Settings
from gateway.tokens import (
    KeyPassphraseError,
    KeyRecord,
    KeystoreCorrupt,
    KeystoreMissing,
    KeystoreUnreadable,
    KeystoreUnwritable,
    Manifest,
    RotationRefused,
    ensure_keystore,
    export_jwks,
    jwk_thumbprint,
    load_keystore,
    prune_keys,
    read_manifest,
    render_jwks,
    rotate_keys,
)
from gateway.tokens._keyfiles import encode_private_key
from gateway.tokens.algorithms import public_jwk_members
from tests.unit.conftest import make_settings

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


def keys_dir(settings: Settings) -> Path:
    return Path(settings.keys_dir)


def key_files(settings: Settings) -> set[str]:
    return {path.name for path in keys_dir(settings).glob("*.pem")}


# Creation and layout


def test_new_keystore_has_one_current_and_one_next_key(tmp_path: Path) -> None:
    config = make_settings(tmp_path)

    created = ensure_keystore(config)

    manifest = read_manifest(config)
    assert created is True
    assert [key.state for key in manifest.keys] == ["current", "next"]
    assert manifest.current.activated_at is not None
    assert manifest.next.activated_at is None
    assert key_files(config) == {f"{key.kid}.pem" for key in manifest.keys}


def test_ensure_keystore_never_overwrites_an_existing_keystore(settings: Settings) -> None:
    before = (keys_dir(settings) / "manifest.json").read_bytes()

    created = ensure_keystore(settings)

    assert created is False
    assert (keys_dir(settings) / "manifest.json").read_bytes() == before


def test_private_key_files_have_mode_0600(settings: Settings) -> None:
    for path in keys_dir(settings).glob("*.pem"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_kid_is_the_rfc_7638_thumbprint_of_the_public_key(settings: Settings) -> None:
    store = load_keystore(settings)

    for key in store.keys:
        assert key.kid == jwk_thumbprint(public_jwk_members(key.private_key.public_key()))


def test_jwks_file_equals_the_published_jwks_and_holds_no_private_member(
    settings: Settings,
) -> None:
    store = load_keystore(settings)
    on_disk = json.loads((keys_dir(settings) / "jwks.json").read_bytes())

    assert on_disk == store.jwks()
    assert [jwk["kid"] for jwk in on_disk["keys"]] == [key.kid for key in store.keys]
    for jwk in on_disk["keys"]:
        assert not PRIVATE_MEMBERS & set(jwk)
        assert jwk["use"] == "sig"
        assert jwk["alg"] == "ES256"


def test_rsa_jwks_holds_no_private_member(tmp_path: Path) -> None:
    config = make_settings(tmp_path, signing_alg="RS256")
    ensure_keystore(config)

    on_disk = json.loads((keys_dir(config) / "jwks.json").read_bytes())

    for jwk in on_disk["keys"]:
        assert set(jwk) == {"kty", "n", "e", "kid", "alg", "use"}


def test_manifest_times_are_iso_8601_utc(settings: Settings) -> None:
    document = json.loads((keys_dir(settings) / "manifest.json").read_bytes())

    for entry in document["keys"]:
        assert entry["created_at"].endswith("Z")
        assert datetime.fromisoformat(entry["created_at"]).tzinfo is not None


# Rotation


def test_rotate_promotes_next_to_current_and_current_to_retiring(settings: Settings) -> None:
    before = read_manifest(settings)

    after = rotate_keys(settings)

    assert after.current.kid == before.next.kid
    assert after.current.activated_at is not None
    assert [key.kid for key in after.retiring] == [before.current.kid]
    assert after.retiring[0].retired_at is not None
    assert after.next.kid not in {before.current.kid, before.next.kid}
    assert read_manifest(settings) == after
    assert key_files(settings) == {f"{key.kid}.pem" for key in after.keys}


def test_rotate_rewrites_the_jwks_file_with_next_current_and_retiring_keys(
    settings: Settings,
) -> None:
    after = rotate_keys(settings)

    on_disk = json.loads((keys_dir(settings) / "jwks.json").read_bytes())
    assert {jwk["kid"] for jwk in on_disk["keys"]} == {key.kid for key in after.keys}


def test_rotate_refuses_a_next_key_younger_than_the_jwks_max_age(tmp_path: Path) -> None:
    config = make_settings(tmp_path, jwks_max_age=300)
    ensure_keystore(config)
    before = read_manifest(config)

    with pytest.raises(RotationRefused, match="GATEWAY_JWKS_MAX_AGE"):
        rotate_keys(config)

    assert read_manifest(config) == before


def test_rotate_waits_until_the_next_key_is_twice_the_jwks_max_age_old(tmp_path: Path) -> None:
    config = make_settings(tmp_path, jwks_max_age=300)
    ensure_keystore(config)
    created = read_manifest(config).next.created_at

    with pytest.raises(RotationRefused, match="rotate again in 1 s"):
        rotate_keys(config, now=created + timedelta(seconds=599))
    after = rotate_keys(config, now=created + timedelta(seconds=600))

    assert after.current.created_at == created


def test_rotate_with_force_accepts_a_young_next_key(tmp_path: Path) -> None:
    config = make_settings(tmp_path, jwks_max_age=300)
    ensure_keystore(config)
    before = read_manifest(config)

    after = rotate_keys(config, force=True)

    assert after.current.kid == before.next.kid


def test_rotation_creates_the_next_key_with_the_configured_algorithm(tmp_path: Path) -> None:
    ensure_keystore(make_settings(tmp_path, signing_alg="ES256"))
    eddsa = make_settings(tmp_path, signing_alg="EdDSA")

    first = rotate_keys(eddsa)
    second = rotate_keys(eddsa)

    assert (first.current.alg, first.next.alg) == ("ES256", "EdDSA")
    assert (second.current.alg, second.next.alg) == ("EdDSA", "EdDSA")
    assert {jwk["alg"] for jwk in load_keystore(eddsa).jwks()["keys"]} == {"ES256", "EdDSA"}


def test_rotate_on_a_missing_keystore_says_how_to_create_one(tmp_path: Path) -> None:
    config = make_settings(tmp_path)

    with pytest.raises(KeystoreMissing, match="gateway keys init"):
        rotate_keys(config)

    assert not keys_dir(config).exists()


# Pruning


def test_prune_keeps_a_retiring_key_while_its_tokens_may_be_alive(settings: Settings) -> None:
    rotated = rotate_keys(settings)
    retired_at = rotated.retiring[0].retired_at
    assert retired_at is not None
    last_moment = retired_at + timedelta(seconds=settings.access_token_ttl + 29)

    dropped = prune_keys(settings, now=last_moment)

    assert dropped == ()
    assert read_manifest(settings) == rotated


def test_prune_drops_a_retiring_key_once_ttl_and_leeway_have_passed(settings: Settings) -> None:
    rotated = rotate_keys(settings)
    retired = rotated.retiring[0]
    assert retired.retired_at is not None
    due = retired.retired_at + timedelta(seconds=settings.access_token_ttl + 30)

    dropped = prune_keys(settings, now=due)

    assert [key.kid for key in dropped] == [retired.kid]
    assert [key.state for key in read_manifest(settings).keys] == ["current", "next"]
    assert f"{retired.kid}.pem" not in key_files(settings)
    jwks = json.loads((keys_dir(settings) / "jwks.json").read_bytes())
    assert retired.kid not in {jwk["kid"] for jwk in jwks["keys"]}


def test_prune_with_force_drops_every_retiring_key(settings: Settings) -> None:
    rotate_keys(settings)
    rotate_keys(settings)

    dropped = prune_keys(settings, force=True)

    assert len(dropped) == 2
    assert read_manifest(settings).retiring == ()


def test_prune_never_drops_the_current_or_next_key(settings: Settings) -> None:
    before = read_manifest(settings)

    dropped = prune_keys(settings, force=True, now=datetime.now(UTC) + timedelta(days=365))

    assert dropped == ()
    assert read_manifest(settings) == before


# Export


def test_export_jwks_writes_the_public_keys_to_a_chosen_path(
    settings: Settings, tmp_path: Path
) -> None:
    target = tmp_path / "public" / "jwks.json"
    target.parent.mkdir()

    written = export_jwks(settings, target)

    assert written == target
    assert target.read_bytes() == render_jwks(load_keystore(settings).jwks())


# Encryption


def test_encrypted_keys_round_trip_with_the_passphrase(tmp_path: Path) -> None:
    config = make_settings(tmp_path, keys_passphrase="correct horse battery staple")
    ensure_keystore(config)

    store = load_keystore(config)

    assert len(store.keys) == 2
    for path in keys_dir(config).glob("*.pem"):
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")


def test_encrypted_keys_without_the_passphrase_fail_with_a_clear_error(tmp_path: Path) -> None:
    ensure_keystore(make_settings(tmp_path, keys_passphrase="correct horse battery staple"))

    with pytest.raises(KeyPassphraseError, match="set GATEWAY_KEYS_PASSPHRASE"):
        load_keystore(make_settings(tmp_path))


def test_encrypted_keys_with_a_wrong_passphrase_fail_with_a_clear_error(tmp_path: Path) -> None:
    ensure_keystore(make_settings(tmp_path, keys_passphrase="correct horse battery staple"))

    with pytest.raises(KeyPassphraseError, match="not the passphrase"):
        load_keystore(make_settings(tmp_path, keys_passphrase="wrong"))


def test_listing_an_encrypted_keystore_needs_no_passphrase(tmp_path: Path) -> None:
    ensure_keystore(make_settings(tmp_path, keys_passphrase="correct horse battery staple"))

    manifest = read_manifest(make_settings(tmp_path))

    assert len(manifest.keys) == 2


def test_setting_a_passphrase_later_encrypts_new_keys_and_keeps_old_ones_readable(
    settings: Settings, tmp_path: Path
) -> None:
    encrypted = make_settings(tmp_path, keys_passphrase="from now on")

    after = rotate_keys(encrypted)

    assert (
        (keys_dir(settings) / f"{after.next.kid}.pem")
        .read_bytes()
        .startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    )
    assert len(load_keystore(encrypted).keys) == 3


# Loading refuses what the gateway did not write


def write_manifest(settings: Settings, document: dict[str, Any]) -> None:
    (keys_dir(settings) / "manifest.json").write_text(json.dumps(document))


def manifest_document(settings: Settings) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((keys_dir(settings) / "manifest.json").read_bytes())
    return document


def test_a_manifest_kid_that_is_a_path_is_refused(settings: Settings) -> None:
    document = manifest_document(settings)
    document["keys"][0]["kid"] = "../../../../etc/passwd"
    write_manifest(settings, document)

    with pytest.raises(KeystoreCorrupt, match="not a base64url thumbprint"):
        load_keystore(settings)


def test_a_manifest_that_is_not_json_is_refused_with_advice(settings: Settings) -> None:
    (keys_dir(settings) / "manifest.json").write_text("{ half a manif")

    with pytest.raises(KeystoreCorrupt, match="restore it from a backup"):
        load_keystore(settings)


def test_a_manifest_with_two_current_keys_is_refused(settings: Settings) -> None:
    document = manifest_document(settings)
    for entry in document["keys"]:
        entry["state"] = "current"
    write_manifest(settings, document)

    with pytest.raises(KeystoreCorrupt, match="exactly one current"):
        load_keystore(settings)


def test_a_manifest_whose_current_key_has_a_retired_at_is_refused(settings: Settings) -> None:
    document = manifest_document(settings)
    for entry in document["keys"]:
        if entry["state"] == "current":
            entry["retired_at"] = "2026-01-01T00:00:00Z"
    write_manifest(settings, document)

    with pytest.raises(KeystoreCorrupt, match="is current but has a retired_at"):
        load_keystore(settings)


def test_a_manifest_naming_an_unsupported_algorithm_is_refused(settings: Settings) -> None:
    document = manifest_document(settings)
    document["keys"][0]["alg"] = "HS256"
    write_manifest(settings, document)

    with pytest.raises(KeystoreCorrupt, match="unsupported alg"):
        load_keystore(settings)


def test_a_key_file_swapped_for_another_key_is_refused(settings: Settings) -> None:
    current, upcoming = read_manifest(settings).keys
    directory = keys_dir(settings)
    (directory / f"{current.kid}.pem").write_bytes((directory / f"{upcoming.kid}.pem").read_bytes())

    with pytest.raises(KeystoreCorrupt, match="thumbprint differs"):
        load_keystore(settings)


def test_a_missing_key_file_is_reported(settings: Settings) -> None:
    current = read_manifest(settings).current
    (keys_dir(settings) / f"{current.kid}.pem").unlink()

    with pytest.raises(KeystoreCorrupt, match="is missing"):
        load_keystore(settings)


def test_an_rsa_key_smaller_than_2048_bits_is_refused(tmp_path: Path) -> None:
    config = make_settings(tmp_path)
    directory = keys_dir(config)
    directory.mkdir()
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    upcoming = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC).replace(microsecond=0)
    records = []
    for key, alg, state in ((small, "RS256", "current"), (upcoming, "ES256", "next")):
        kid = jwk_thumbprint(public_jwk_members(key.public_key()))
        (directory / f"{kid}.pem").write_bytes(encode_private_key(key, None))
        records.append(KeyRecord(kid=kid, alg=alg, state=state, created_at=now))  # type: ignore[arg-type]
    (directory / "manifest.json").write_bytes(Manifest(keys=tuple(records)).render())

    with pytest.raises(KeystoreCorrupt, match="at least 2048 bits"):
        load_keystore(config)


def test_a_key_of_another_type_than_its_alg_is_refused(settings: Settings) -> None:
    document = manifest_document(settings)
    document["keys"][0]["alg"] = "EdDSA"
    write_manifest(settings, document)

    with pytest.raises(KeystoreCorrupt, match="Ed25519"):
        load_keystore(settings)


def test_a_key_file_not_named_by_the_manifest_is_ignored_then_removed_on_the_next_write(
    settings: Settings,
) -> None:
    stray = ec.generate_private_key(ec.SECP256R1())
    stray_kid = jwk_thumbprint(public_jwk_members(stray.public_key()))
    stray_path = keys_dir(settings) / f"{stray_kid}.pem"
    stray_path.write_bytes(encode_private_key(stray, None))

    assert stray_kid not in {key.kid for key in load_keystore(settings).keys}
    rotate_keys(settings)
    assert not stray_path.exists()


def test_files_that_do_not_look_like_ours_are_left_alone(settings: Settings) -> None:
    readme = keys_dir(settings) / "README.txt"
    readme.write_text("operator notes")

    rotate_keys(settings)

    assert readme.read_text() == "operator notes"


def test_a_stale_jwks_file_is_regenerated_from_the_manifest(settings: Settings) -> None:
    jwks_path = keys_dir(settings) / "jwks.json"
    jwks_path.write_text('{"keys": []}')

    ensure_keystore(settings)

    assert jwks_path.read_bytes() == render_jwks(load_keystore(settings).jwks())


def test_a_jwks_file_without_a_manifest_is_not_mistaken_for_an_empty_directory(
    settings: Settings,
) -> None:
    (keys_dir(settings) / "manifest.json").unlink()
    before = key_files(settings)

    with pytest.raises(KeystoreCorrupt, match=r"restore manifest\.json"):
        ensure_keystore(settings)

    assert key_files(settings) == before


# Unwritable and unreadable keystores


def test_a_keys_dir_under_a_file_gives_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-directory").write_text("")
    config = Settings(keys_dir=str(tmp_path / "not-a-directory" / "keys"))

    with pytest.raises(KeystoreUnwritable, match="not a directory"):
        ensure_keystore(config)


def test_a_keys_dir_that_is_a_file_gives_a_clear_error_when_reading(tmp_path: Path) -> None:
    (tmp_path / "keys").write_text("")

    with pytest.raises(KeystoreUnreadable, match="not a directory"):
        load_keystore(make_settings(tmp_path))


def test_a_failed_jwks_write_after_the_commit_says_how_to_recover(settings: Settings) -> None:
    jwks_path = keys_dir(settings) / "jwks.json"
    jwks_path.unlink()
    jwks_path.mkdir()  # a directory where the file should be: the rename fails
    before = read_manifest(settings)

    with pytest.raises(KeystoreUnwritable, match="gateway keys export-jwks"):
        rotate_keys(settings)

    after = read_manifest(settings)
    assert after.current.kid == before.next.kid
    assert {key.kid for key in before.keys} <= {key.kid for key in after.keys}
    assert len(load_keystore(settings).keys) == 3
