"""The SQL the gateway ships: the documented example is the applied one; explain's arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from gateway.errors import InvalidInput
from gateway.postgrest._jwk_rules import RULES, jwks_problem, rules_sql_literal
from gateway.postgrest.bootstrap import BootstrapPlan
from gateway.postgrest.explain import helper_values, per_request_sql
from gateway.postgrest.jwks_database import key_ids, same_jwks
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_documented_example_is_the_one_bootstrap_applies() -> None:
    documented = (ROOT / "docs" / "example-org-scoped.sql").read_text()
    applied = BootstrapPlan.from_settings(Settings(), example=True).sql()

    body = "\n".join(
        line
        for line in documented.splitlines()
        if not line.startswith("-- Applied")
        and not line.startswith("-- GATEWAY_ALLOWED")
        and not line.startswith("-- Kept")
    )
    assert body.strip() in applied


def test_bootstrap_covers_the_anon_role_and_every_allowed_role() -> None:
    plan = BootstrapPlan.from_settings(
        Settings(allowed_roles=["authenticated", "reporting"]), anon_role="web_anon"
    )

    script = plan.sql()
    for role in ("web_anon", "authenticated", "reporting"):
        assert f'CREATE ROLE "{role}" NOLOGIN;' in script
        assert f'GRANT "{role}" TO "authenticator";' in script
    assert 'CREATE ROLE "authenticator" LOGIN NOINHERIT;' in script
    assert "DROP" not in script


@pytest.mark.parametrize("bad", ["Robert'); DROP ROLE x; --", "has space", "UPPER"])
def test_role_names_are_identifiers_never_sql(bad: str) -> None:
    with pytest.raises(InvalidInput):
        BootstrapPlan.from_settings(Settings(), anon_role=bad)


def test_the_authenticator_must_not_be_a_role_it_switches_to() -> None:
    with pytest.raises(InvalidInput):
        BootstrapPlan.from_settings(Settings(), authenticator_role="authenticated")


def test_helpers_return_null_for_an_anonymous_request() -> None:
    assert set(helper_values({"role": "anon"}).values()) == {None}
    assert set(helper_values(None).values()) == {None}


def test_helpers_read_the_nested_claims() -> None:
    claims = {
        "sub": "7",
        "role": "authenticated",
        "user": {
            "role": "org_client",
            "email": "a@example.com",
            "user_id": 7,
            "organization_id": 9,
        },
        "organization": {"org_name": "Acme", "organization_id": 9},
    }

    assert helper_values(claims) == {
        "auth.claims()": claims,
        "auth.user_id()": 7,
        "auth.organization_id()": 9,
        "auth.org_role()": "org_client",
        "auth.email()": "a@example.com",
    }


def test_per_request_sql_quotes_every_value_as_a_literal() -> None:
    statement = per_request_sql(
        Settings(),
        role="authenticated",
        claims={"sub": "1", "name": "O'Hara"},
        method="get",
        path="/todos",
    )

    assert 'set_config(\'request.jwt.claims\', \'{"sub":"1","name":"O\'\'Hara"}\', true)' in (
        statement
    )
    assert "set_config('request.method', 'GET', true)" in statement


def test_the_jwks_publisher_and_check_session_are_opt_in() -> None:
    plain = BootstrapPlan.from_settings(Settings()).sql()
    both = BootstrapPlan.from_settings(
        Settings(), jwks_in_database=True, jwks_publisher="gateway_app", check_sessions=True
    ).sql()

    assert "publish_jwks" not in plain
    assert "check_session" not in plain
    assert "REVOKE ALL ON FUNCTION auth.publish_jwks(text) FROM PUBLIC;" in both
    assert "publisher name := 'gateway_app';" in both
    assert "GRANT EXECUTE ON FUNCTION auth.publish_jwks(text) TO %I', publisher" in both
    assert 'REVOKE ALL ON FUNCTION "gateway_check".session_refusal(text, text) FROM PUBLIC;' in both
    assert 'REVOKE USAGE ON SCHEMA "gateway" FROM' in both
    assert "SET pgrst.db_pre_request = %L', 'authenticator', current_database()" in both
    # The one DROP: the previous version's session_refusal, moved to its own schema.
    assert [line for line in both.splitlines() if "DROP" in line] == [
        'DROP FUNCTION IF EXISTS "gateway".session_refusal(text, text);'
    ]


@pytest.mark.parametrize(
    "publisher", ["public", "pg_write_all_data", "anon", "authenticated", "authenticator"]
)
def test_the_publisher_is_never_public_a_pg_role_or_an_api_role(publisher: str) -> None:
    with pytest.raises(InvalidInput, match="may not be PUBLIC"):
        BootstrapPlan.from_settings(Settings(), jwks_in_database=True, jwks_publisher=publisher)


def test_the_default_publisher_is_checked_like_a_named_one() -> None:
    settings = Settings(postgrest_notify_url="postgresql://authenticator:pw@db:5432/app")

    with pytest.raises(InvalidInput, match="'authenticator' may not be"):
        BootstrapPlan.from_settings(settings, jwks_in_database=True)


def test_the_publisher_role_is_an_identifier_never_sql() -> None:
    with pytest.raises(InvalidInput):
        BootstrapPlan.from_settings(
            Settings(), jwks_in_database=True, jwks_publisher='x" TO PUBLIC; --'
        )


def test_the_publisher_defaults_to_the_user_of_the_gateways_url() -> None:
    settings = Settings(postgrest_notify_url="postgresql://gateway_app:pw@db:5432/app")
    plan = BootstrapPlan.from_settings(settings, jwks_in_database=True)

    assert plan.jwks_publisher == "gateway_app"
    assert BootstrapPlan.from_settings(Settings(), jwks_in_database=True).jwks_publisher is None


def test_key_ids_and_same_jwks_read_documents_defensively() -> None:
    live = {"keys": [{"kid": "a", "kty": "EC"}, {"kid": "b", "kty": "EC"}]}

    assert key_ids(b'{"keys": [{"kid": "a"}, {"kid": "b"}]}') == ["a", "b"]
    assert key_ids(b"not json") == key_ids(None) == key_ids(b"[1]") == []
    assert same_jwks(b'{"keys":[{"kty":"EC","kid":"a"},{"kid":"b","kty":"EC"}]}', live)
    assert not same_jwks(b'{"keys": [{"kid": "a", "kty": "EC"}]}', live)
    assert not same_jwks(b"not json", live)
    assert not same_jwks(None, live)


def _public_keys() -> list[dict[str, object]]:
    keys: list[dict[str, object]] = [
        json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(curve()).public_key()))
        for curve in (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
    ]
    keys.append(json.loads(RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048).public_key())))
    keys.append(json.loads(OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate().public_key())))
    for number, key in enumerate(keys):
        key.update(kid=f"k{number}", use="sig", key_ops=["verify"])
    return keys


def test_every_allowed_profile_passes_with_its_alg() -> None:
    keys = _public_keys()
    for key, alg in zip(keys, ["ES256", "ES384", "ES512", "RS256", "EdDSA"], strict=True):
        key["alg"] = alg

    assert jwks_problem(json.dumps({"keys": keys}).encode()) is None


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"kty": "oct", "k": "c2VjcmV0"}, "private member"),
        ({"d": "AQAB"}, "private member"),
        ({"crv": "P-999"}, "is not one of the public key types"),
        ({"alg": "HS256"}, "has alg 'HS256'"),
        ({"alg": "ES384"}, "has alg 'ES384'"),
        ({"use": "enc"}, '"use" other than "sig"'),
        ({"key_ops": ["verify", "sign"]}, "key_ops"),
        ({"x5c": ["MIIB"]}, "holds a member outside"),
        ({"kid": 7}, "kid that is not a string"),
        ({"kid": ""}, "kid that is not a string"),
        ({"x": "AAAA"}, "x that is not canonical base64url of 32-32 bytes"),
        ({"y": "not base64!"}, "y that is not canonical base64url"),
    ],
)
def test_a_key_outside_its_profile_is_refused(change: dict[str, object], why: str) -> None:
    key = {**_public_keys()[0], **change}

    problem = jwks_problem(json.dumps({"keys": [key]}).encode())

    assert problem is not None
    assert why in problem


def test_a_coordinate_off_its_curve_is_refused() -> None:
    key = _public_keys()[0]
    key["x"] = key["y"]

    assert "not a valid public key" in str(jwks_problem(json.dumps({"keys": [key]}).encode()))


@pytest.mark.parametrize(
    "document",
    [
        b'{"keys":[{"kty":"RSA"}],"kty":"oct","k":"c2VjcmV0"}',
        b'{"keys":[{"kty":"EC","crv":"P-999","x":"a","y":"b"}]}',
        b'{"keys":[]}',
        b"[]",
        b"not json",
    ],
)
def test_documents_postgrest_would_misread_are_refused(document: bytes) -> None:
    assert jwks_problem(document) is not None


def test_the_sql_function_carries_the_same_rules() -> None:
    script = BootstrapPlan.from_settings(
        Settings(), jwks_in_database=True, jwks_publisher="gateway_app"
    ).sql()

    assert f"rules jsonb := {rules_sql_literal()};" in script
    assert json.loads(rules_sql_literal()[1 : -len("'::jsonb")]) == RULES
