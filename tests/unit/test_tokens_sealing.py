"""Private keys sealed for the store: round trip, binding to their row, the passphrase check."""

from __future__ import annotations

import pytest

from gateway.tokens import KeyPassphraseError, KeystoreCorrupt
from gateway.tokens._lifecycle import moment
from gateway.tokens._sealing import (
    KDF,
    derive_kek,
    make_check,
    new_salt,
    open_private_key,
    seal_private_key,
    verify_check,
)
from gateway.tokens._stored import StoredKey

SALT = new_salt()
KEK = derive_kek("correct horse", SALT)


def fresh_key(alg: str = "ES256") -> StoredKey:
    return StoredKey.generate(alg, now=moment(None))  # type: ignore[arg-type]


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_a_sealed_key_opens_to_the_same_key(alg: str) -> None:
    key = fresh_key(alg)
    sealed = seal_private_key(KEK, key.private_key, kid=key.kid, alg=key.alg)

    opened = open_private_key(KEK, sealed, kid=key.kid, alg=key.alg)

    assert StoredKey.of(key.record, opened).public_jwk == key.public_jwk


def test_a_sealed_key_holds_no_plain_private_key() -> None:
    key = fresh_key()
    sealed = seal_private_key(KEK, key.private_key, kid=key.kid, alg=key.alg)
    from cryptography.hazmat.primitives import serialization

    der = key.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert der not in sealed
    assert der[-32:] not in sealed  # nor the scalar at its end


def test_a_sealed_key_moved_to_another_kid_does_not_open() -> None:
    key, other = fresh_key(), fresh_key()
    sealed = seal_private_key(KEK, key.private_key, kid=key.kid, alg=key.alg)

    with pytest.raises(KeystoreCorrupt, match="copied from another row"):
        open_private_key(KEK, sealed, kid=other.kid, alg=key.alg)


def test_a_sealed_key_relabelled_with_another_alg_does_not_open() -> None:
    key = fresh_key()
    sealed = seal_private_key(KEK, key.private_key, kid=key.kid, alg=key.alg)

    with pytest.raises(KeystoreCorrupt):
        open_private_key(KEK, sealed, kid=key.kid, alg="EdDSA")


def test_a_tampered_seal_does_not_open() -> None:
    key = fresh_key()
    sealed = bytearray(seal_private_key(KEK, key.private_key, kid=key.kid, alg=key.alg))
    sealed[20] ^= 1

    with pytest.raises(KeystoreCorrupt):
        open_private_key(KEK, bytes(sealed), kid=key.kid, alg=key.alg)


def test_two_seals_of_one_key_differ() -> None:
    key = fresh_key()
    first = seal_private_key(KEK, key.private_key, kid=key.kid, alg=key.alg)
    second = seal_private_key(KEK, key.private_key, kid=key.kid, alg=key.alg)
    assert first != second  # a fresh nonce each time


def test_the_check_accepts_the_passphrase_and_refuses_another() -> None:
    check = make_check(KEK)
    verify_check(derive_kek("correct horse", SALT), check)

    with pytest.raises(KeyPassphraseError, match="another passphrase"):
        verify_check(derive_kek("wrong horse", SALT), check)


def test_the_same_passphrase_with_another_salt_is_another_key() -> None:
    with pytest.raises(KeyPassphraseError):
        verify_check(derive_kek("correct horse", new_salt()), make_check(KEK))


def test_an_unknown_key_derivation_is_refused() -> None:
    with pytest.raises(KeystoreCorrupt, match="upgrade the gateway"):
        derive_kek("correct horse", SALT, KDF.replace("65536", "1024"))


def test_the_kek_repr_shows_no_key() -> None:
    assert repr(KEK) == "Kek(...)"


def test_a_sealed_key_does_not_open_in_another_keystore_under_the_same_key() -> None:
    # The salt is the keystore's id and part of the seal's associated data: a row copied from
    # another keystore does not open even under the very same derived key.
    from gateway.tokens._sealing import Kek

    master = b"k" * 32
    ours, theirs = Kek(master, new_salt()), Kek(master, new_salt())
    key = fresh_key()
    sealed = seal_private_key(theirs, key.private_key, kid=key.kid, alg=key.alg)

    with pytest.raises(KeystoreCorrupt):
        open_private_key(ours, sealed, kid=key.kid, alg=key.alg)


def test_the_manifest_mac_is_its_own_key_and_refuses_any_change() -> None:
    tag = KEK.mac(b"manifest")

    assert KEK.verify_mac(b"manifest", tag)
    assert not KEK.verify_mac(b"manifesT", tag)
    assert not KEK.verify_mac(b"manifest", None)
    assert not derive_kek("wrong horse", SALT).verify_mac(b"manifest", tag)
    # The MAC key is not the sealing key: a MAC is no seal of anything.
    with pytest.raises(Exception):  # noqa: B017, PT011
        KEK.open(b"\0" * 12 + tag, b"manifest")
