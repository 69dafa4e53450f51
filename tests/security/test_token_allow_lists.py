"""A token the gateway signed is a user's access token only if every claim says so.

The signing key also signs ``gateway doctor``'s probe, and tokens minted under yesterday's
settings stay signed: neither may work as a user's token at /rest or /auth/me.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import jwt
import pytest

from gateway.accounts.users import create_user
from gateway.postgrest.doctor import probe_token
from gateway.settings import Settings
from gateway.tokens.signing import load_keyring
from tests.conftest import settings_from
from tests.e2e.conftest import Served
from tests.integration.conftest import PASSWORD, Client, bearer, runtime_of
from tests.security.test_hostile_tokens import assert_refused
from tests.support.in_process import GatewayClient
from tests.support.postgrest import PostgREST

sqlite_only = pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)


def test_the_doctor_probe_is_accepted_by_postgrest_and_refused_by_the_gateway(
    proxy: str, served: Served, postgrest: PostgREST
) -> None:
    settings = settings_from(served.env)
    probe = probe_token(settings, load_keyring(settings))  # exactly what doctor sends
    headers = {"Authorization": f"Bearer {probe}"}

    at_postgrest = httpx.get(f"{postgrest.url}/", headers=headers)
    at_rest = httpx.get(f"{proxy}/rest/rpc/echo_request", headers=headers)
    at_me = httpx.get(f"{proxy}/auth/me", headers=headers)

    assert at_postgrest.status_code == 200, at_postgrest.text  # doctor's check still works
    assert_refused(at_rest, "doctor probe at /rest")
    assert at_rest.json()["code"] == "invalid_token"
    assert_refused(at_me, "doctor probe at /auth/me")
    claims = jwt.decode(probe, options={"verify_signature": False})
    # Structurally no user: no subject and no session for the RLS helpers to read.
    assert "sub" not in claims
    assert "sid" not in claims
    assert claims["token_type"] != "access_token"


@sqlite_only
async def test_a_role_taken_off_the_allow_list_stops_working_at_once(
    auth_settings: Settings, tmp_path: Path
) -> None:
    before = auth_settings.model_copy(update={"allowed_roles": ["authenticated", "reporting"]})
    after = auth_settings.model_copy(update={"allowed_roles": ["authenticated"]})
    async with GatewayClient(before) as old:
        runtime = runtime_of(old)
        async with runtime.store.begin() as db:
            await create_user(
                db=db,
                passwords=runtime.passwords,
                settings=before,
                email="rita@example.com",
                password=PASSWORD,
                db_role="reporting",
            )
        login = await old.post(
            "/auth/login", json={"email": "rita@example.com", "password": PASSWORD}
        )
        token = login.json()["access_token"]
        assert jwt.decode(token, options={"verify_signature": False})["role"] == "reporting"
        assert (await old.get("/auth/me", headers=bearer(token))).status_code == 200

    new: Client
    async with GatewayClient(after) as new:
        me = await new.get("/auth/me", headers=bearer(token))
        rest = await new.get("/rest/projects", headers=bearer(token))

    assert_refused(me, "removed role at /auth/me")
    assert_refused(rest, "removed role at /rest")
    assert rest.json()["code"] == "invalid_token"
