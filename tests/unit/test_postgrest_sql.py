"""The SQL the gateway ships: the documented example is the applied one; explain's arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import InvalidInput
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
    assert 'GRANT EXECUTE ON FUNCTION auth.publish_jwks(text) TO "gateway_app";' in both
    assert 'REVOKE ALL ON FUNCTION "gateway".session_refusal(text, text) FROM PUBLIC;' in both
    assert "SET pgrst.db_pre_request = %L', 'authenticator', current_database()" in both
    assert "DROP" not in both


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
