"""The SQL the gateway ships: the documented example is the applied one; explain's arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.errors import InvalidInput
from gateway.postgrest.bootstrap import BootstrapPlan
from gateway.postgrest.explain import helper_values, per_request_sql
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
