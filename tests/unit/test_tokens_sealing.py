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
