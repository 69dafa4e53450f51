"""Schemathesis against the gateway's own OpenAPI: every /auth operation, in process.

Each operation gets a bounded, derandomized Hypothesis run, once anonymous and once with a
genuine bearer token (so the handlers behind the authentication check are fuzzed too). The
checks: no 5xx, and every answer matches the status codes and the response schema the OpenAPI
document declares.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok
from schemathesis.python.asgi import shutdown_lifespans

from gateway.settings import Settings
from gateway.store.lifecycle import migrate_store
from gateway.web.app import create_server_app
from tests.integration.conftest import PASSWORD, seed_accounts
from tests.support.in_process import SyncGatewayClient

MAX_EXAMPLES = 40
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


def fuzz_settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
        keys_dir=str(tmp_path / "keys"),
        cookie_secure=False,
        auth_rate_limit=10**9,
        # Every failed fuzzed login counts towards a lockout; keep the lockout out of the way.
        login_max_failures=1000,
        # Sign-up open, its mail written to the log: fuzzed sign-ups do all their work.
        signup="open",
        dev_mode=True,
    )


def sign_in(settings: Settings) -> str:
    with SyncGatewayClient(settings) as client:
        response = client.post(
            "/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def test_every_auth_operation_survives_fuzzing_and_answers_as_documented(
    tmp_path: Path,
) -> None:
    settings = fuzz_settings(tmp_path)
    asyncio.run(migrate_store(settings))
    asyncio.run(seed_accounts(settings))
    token = sign_in(settings)
    app = create_server_app(settings)
    ran: Counter[str] = Counter()
    try:
        schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
        operations = []
        for result in schema.include(path_regex="^/auth/").get_all_operations():
            # An operation the loader cannot read is a broken OpenAPI document: a finding.
            assert isinstance(result, Ok), result.err()
            operations.append(result.ok())
        labels = sorted(operation.label for operation in operations)
        assert labels == [
            "DELETE /auth/organizations/{organization_id}/invitations/{invitation_id}",
            "DELETE /auth/organizations/{organization_id}/members/{user_id}",
            "GET /auth/me",
            "GET /auth/organizations",
            "GET /auth/organizations/{organization_id}/invitations",
            "GET /auth/organizations/{organization_id}/members",
            "GET /auth/v1/settings",
            "GET /auth/v1/user",
            "PATCH /auth/organizations/{organization_id}",
            "PATCH /auth/organizations/{organization_id}/members/{user_id}",
            "POST /auth/invitations/accept",
            "POST /auth/login",
            "POST /auth/logout",
            "POST /auth/organizations",
            "POST /auth/organizations/{organization_id}/invitations",
            "POST /auth/organizations/{organization_id}/leave",
            "POST /auth/password/change",
            "POST /auth/password/forgot",
            "POST /auth/password/reset",
            "POST /auth/refresh",
            "POST /auth/signup",
            "POST /auth/switch-organization",
            "POST /auth/v1/logout",
            "POST /auth/v1/recover",
            "POST /auth/v1/signup",
            "POST /auth/v1/token",
            "POST /auth/verify-email",
            "POST /auth/verify-email/resend",
            "PUT /auth/v1/user",
        ]
        for operation in operations:
            # Logout with the genuine token would end its session for every later case.
            variants: list[dict[str, str]] = [{}]
            if operation.label not in ("POST /auth/logout", "POST /auth/v1/logout"):
                variants.append({"Authorization": f"Bearer {token}"})
            for headers in variants:
                fuzz(operation, headers, ran)
    finally:
        shutdown_lifespans()
    report = ", ".join(f"{label}: {count}" for label, count in sorted(ran.items()))
    print(f"schemathesis ran {sum(ran.values())} cases ({report})")
    # GET /auth/me and the resend take no input: one case per variant is all there is.
    no_input = (
        "GET /auth/me",
        "GET /auth/organizations",
        "POST /auth/verify-email/resend",
        "GET /auth/v1/settings",
        "GET /auth/v1/user",
    )
    assert len(ran) == 2 * len(labels) - 2, ran
    # /auth/v1/logout takes only ?scope=, one of three values or none: four cases are all.
    assert ran.pop("POST /auth/v1/logout") == 4, ran
    assert all(
        count == MAX_EXAMPLES
        for label, count in ran.items()
        if label.removesuffix(" (bearer)") not in no_input
    )


def fuzz(operation: Any, headers: dict[str, str], ran: Counter[str]) -> None:
    label = operation.label + (" (bearer)" if headers else "")

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        ran[label] += 1
        case.call_and_validate(headers=headers or None, checks=CHECKS)

    run()
