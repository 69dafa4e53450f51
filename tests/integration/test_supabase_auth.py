"""/auth/v1: GoTrue's shapes over the same sign-in, refresh, logout and password functions."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import msgspec
import pytest
from pydantic import SecretStr

from gateway.sessions import CSRF_HEADER, IssuedTokens, cookie_names
from gateway.settings import Settings
from gateway.tokens import Identity, sign_anon_key
from gateway.web.auth.supabase_answers import session_answer
from tests.integration.conftest import PASSWORD, Accounts, Client, bearer, runtime_of
from tests.support.in_process import GatewayClient
from tests.support.smtp import smtp_server

pytestmark = pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)


def claims_of(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


async def sign_in(client: Client, email: str = "ada@example.com", **headers: str) -> dict[str, Any]:
    response = await client.post(
        "/auth/v1/token?grant_type=password",
        json={"email": email, "password": PASSWORD, "gotrue_meta_security": {}},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_gotrue_error(response: Any, status: int, error_code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == status
    assert body["error_code"] == error_code
    assert isinstance(body["msg"], str)
    assert body["msg"]


async def test_password_grant_answers_a_gotrue_session_carrying_the_gateways_claims(
    client: Client, accounts: Accounts
) -> None:
    body = await sign_in(client)

    assert body["token_type"] == "bearer"
    assert body["expires_at"] - int(time.time()) <= body["expires_in"] + 1
    assert body["refresh_token"]
    user = body["user"]
    assert user["id"] == str(accounts.ada)
    assert user["email"] == "ada@example.com"
    assert user["app_metadata"]["provider"] == "email"
    assert user["app_metadata"]["organization"]["organization_id"] == accounts.acme
    claims = claims_of(body["access_token"])
    assert claims["role"] == "authenticated"
    assert claims["sub"] == str(accounts.ada)
    assert claims["user"]["role"] == "org_admin"
    assert claims["organization"]["organization_id"] == accounts.acme


async def test_a_wrong_password_and_an_unknown_email_get_the_same_gotrue_refusal(
    client: Client, accounts: Accounts
) -> None:
    answers = []
    for email in ("ada@example.com", "nobody@example.com"):
        response = await client.post(
            "/auth/v1/token?grant_type=password", json={"email": email, "password": "wrong one!"}
        )
        assert_gotrue_error(response, 400, "invalid_credentials")
        answers.append(response.json())

    assert answers[0] == answers[1]


@pytest.mark.parametrize("query", ["?grant_type=pkce", "?grant_type=", "", "?grant_type=id_token"])
async def test_an_unknown_or_missing_grant_type_is_a_gotrue_400(
    client: Client, accounts: Accounts, query: str
) -> None:
    response = await client.post(f"/auth/v1/token{query}", json={"email": "a@b.c"})

    assert_gotrue_error(response, 400, "unsupported_grant_type")


@pytest.mark.parametrize(
    "body", [b"{", b"[]", b'{"email": 5}', b'{"password": "x"}', b'{"email": "a\\u0000b"}']
)
async def test_bad_input_to_the_token_endpoint_is_a_gotrue_400_never_a_500(
    client: Client, accounts: Accounts, body: bytes
) -> None:
    response = await client.post(
        "/auth/v1/token?grant_type=password",
        content=body,
        headers={"content-type": "application/json"},
    )

    assert_gotrue_error(response, 400, "validation_failed")


async def test_refresh_grant_rotates_and_a_reused_refresh_token_is_refused_gotrue_style(
    auth_settings: Settings, accounts: Accounts
) -> None:
    settings = auth_settings.model_copy(update={"refresh_reuse_grace": 0})
    async with GatewayClient(settings) as client:
        first = await sign_in(client)
        refreshed = await client.post(
            "/auth/v1/token?grant_type=refresh_token",
            json={"refresh_token": first["refresh_token"]},
        )
        reused = await client.post(
            "/auth/v1/token?grant_type=refresh_token",
            json={"refresh_token": first["refresh_token"]},
        )

    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != first["refresh_token"]
    assert refreshed.json()["user"]["id"] == str(accounts.ada)
    assert_gotrue_error(reused, 400, "refresh_token_already_used")


async def test_get_user_answers_the_gotrue_user_and_after_logout_session_not_found(
    client: Client, accounts: Accounts
) -> None:
    token = (await sign_in(client))["access_token"]

    user = await client.get("/auth/v1/user", headers=bearer(token))
    assert user.status_code == 200, user.text
    assert user.json()["id"] == str(accounts.ada)
    assert [m["organization_id"] for m in user.json()["app_metadata"]["organizations"]] == [
        accounts.acme,
        accounts.globex,
    ]

    logout = await client.post("/auth/v1/logout?scope=local", headers=bearer(token))
    assert logout.status_code == 204, logout.text
    assert_gotrue_error(
        await client.get("/auth/v1/user", headers=bearer(token)), 403, "session_not_found"
    )
    assert_gotrue_error(await client.get("/auth/v1/user"), 401, "no_authorization")


async def test_logout_scope_others_ends_every_other_session_and_keeps_this_one(
    client: Client, accounts: Accounts
) -> None:
    this = (await sign_in(client))["access_token"]
    other = (await sign_in(client))["access_token"]

    response = await client.post("/auth/v1/logout?scope=others", headers=bearer(this))

    assert response.status_code == 204, response.text
    assert (await client.get("/auth/v1/user", headers=bearer(this))).status_code == 200
    assert (await client.get("/auth/v1/user", headers=bearer(other))).status_code == 403


async def test_logout_without_a_scope_is_global_as_in_gotrue(
    client: Client, accounts: Accounts
) -> None:
    this = (await sign_in(client))["access_token"]
    other = (await sign_in(client))["access_token"]

    response = await client.post("/auth/v1/logout", headers=bearer(this))

    assert response.status_code == 204, response.text
    for token in (this, other):
        assert (await client.get("/auth/v1/user", headers=bearer(token))).status_code == 403


async def test_logout_with_an_unknown_scope_is_refused(client: Client, accounts: Accounts) -> None:
    token = (await sign_in(client))["access_token"]

    response = await client.post("/auth/v1/logout?scope=everyone", headers=bearer(token))

    assert_gotrue_error(response, 400, "validation_failed")
    assert (await client.get("/auth/v1/user", headers=bearer(token))).status_code == 200


async def test_put_user_changes_the_password_with_the_current_one_and_ends_other_sessions(
    client: Client, accounts: Accounts
) -> None:
    this = (await sign_in(client))["access_token"]
    other = (await sign_in(client))["access_token"]

    without = await client.put(
        "/auth/v1/user", json={"password": "a brand new password"}, headers=bearer(this)
    )
    assert_gotrue_error(without, 400, "reauthentication_needed")
    wrong = await client.put(
        "/auth/v1/user",
        json={"password": "a brand new password", "current_password": "not it at all"},
        headers=bearer(this),
    )
    assert_gotrue_error(wrong, 400, "invalid_credentials")
    weak = await client.put(
        "/auth/v1/user",
        json={"password": "short", "current_password": PASSWORD},
        headers=bearer(this),
    )
    assert_gotrue_error(weak, 422, "weak_password")
    assert weak.json()["weak_password"]["reasons"] == ["length"]

    changed = await client.put(
        "/auth/v1/user",
        json={"password": "a brand new password", "current_password": PASSWORD},
        headers=bearer(this),
    )

    assert changed.status_code == 200, changed.text
    assert changed.json()["id"] == str(accounts.ada)
    assert (await client.get("/auth/v1/user", headers=bearer(other))).status_code == 403
    signed_in = await client.post(
        "/auth/v1/token?grant_type=password",
        json={"email": "ada@example.com", "password": "a brand new password"},
    )
    assert signed_in.status_code == 200, signed_in.text


@pytest.mark.parametrize(
    "body", [{"email": "eve@example.com"}, {"phone": "+15550100"}, {"data": {"plan": "pro"}}]
)
async def test_put_user_refuses_what_the_gateway_does_not_keep(
    client: Client, accounts: Accounts, body: dict[str, Any]
) -> None:
    token = (await sign_in(client))["access_token"]

    response = await client.put("/auth/v1/user", json=body, headers=bearer(token))

    assert_gotrue_error(response, 422, "validation_failed")


async def test_signup_while_closed_is_gotrue_signup_disabled(
    client: Client, accounts: Accounts
) -> None:
    response = await client.post(
        "/auth/v1/signup", json={"email": "new@example.com", "password": PASSWORD}
    )

    assert_gotrue_error(response, 422, "signup_disabled")
    settings = await client.get("/auth/v1/settings")
    assert settings.status_code == 200
    assert settings.json()["disable_signup"] is True
    assert settings.json()["external"]["email"] is True


async def test_open_signup_answers_alike_for_a_new_and_a_known_address(
    auth_settings: Settings, accounts: Accounts
) -> None:
    settings = auth_settings.model_copy(update={"signup": "open", "dev_mode": True})
    async with GatewayClient(settings) as client:
        answers = []
        for email in ("newcomer@example.com", "ada@example.com"):
            response = await client.post(
                "/auth/v1/signup", json={"email": email, "password": "a long password"}
            )
            assert response.status_code == 200, response.text
            body = response.json()
            answers.append(
                {k: v for k, v in body.items() if not k.endswith("_at") and k != "email"}
            )
        recover = await client.post("/auth/v1/recover", json={"email": "ada@example.com"})
        unknown = await client.post("/auth/v1/recover", json={"email": "nobody@example.com"})

    assert answers[0] == answers[1]
    assert answers[0]["id"] == ""
    assert "identities" not in answers[0]
    assert (recover.status_code, recover.json()) == (200, {})
    assert (unknown.status_code, unknown.json()) == (200, {})


async def test_the_anon_key_is_accepted_as_apikey_and_anything_else_is_refused(
    client: Client, accounts: Accounts
) -> None:
    runtime = runtime_of(client)
    anon = sign_anon_key(runtime.keys.ring, runtime.settings, now=int(time.time()))
    user_token = (await sign_in(client))["access_token"]

    await sign_in(client, apikey=anon, authorization=f"Bearer {anon}")
    for wrong in (user_token, "garbage", anon[:-4] + "AAAA"):
        response = await client.get("/auth/v1/settings", headers={"apikey": wrong})
        assert_gotrue_error(response, 401, "invalid_api_key")


async def test_the_anon_key_is_no_bearer_token_for_the_user_endpoints(
    client: Client, accounts: Accounts
) -> None:
    runtime = runtime_of(client)
    anon = sign_anon_key(runtime.keys.ring, runtime.settings, now=int(time.time()))

    response = await client.get("/auth/v1/user", headers=bearer(anon))

    assert_gotrue_error(response, 403, "bad_jwt")


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/auth/v1/settings", None),
        (
            "POST",
            "/auth/v1/token?grant_type=password",
            {"email": "ada@example.com", "password": PASSWORD},
        ),
        ("POST", "/auth/v1/recover", {"email": "ada@example.com"}),
    ],
)
async def test_the_per_address_limit_applies_to_auth_v1_with_retry_after(
    auth_settings: Settings,
    accounts: Accounts,
    method: str,
    path: str,
    body: dict[str, str] | None,
) -> None:
    # A real SMTP server, so that /recover answers 200 (and mails) until the limit.
    with smtp_server() as (port, _):
        settings = auth_settings.model_copy(
            update={
                "auth_rate_limit": 3,
                "smtp_url": SecretStr(f"smtp+insecure://127.0.0.1:{port}"),
                "mail_from": "accounts@example.com",
                "link_base_url": "https://app.example.com",
            }
        )
        async with GatewayClient(settings) as client:
            statuses = [(await client.request(method, path, json=body)) for _ in range(4)]

    assert [r.status_code for r in statuses[:3]] == [200, 200, 200], statuses[2].text
    assert_gotrue_error(statuses[3], 429, "over_request_rate_limit")
    assert statuses[3].headers["retry-after"]


async def test_the_sign_in_lockout_applies_to_auth_v1(
    auth_settings: Settings, accounts: Accounts
) -> None:
    settings = auth_settings.model_copy(update={"login_max_failures": 2})
    async with GatewayClient(settings) as client:
        for _ in range(2):
            wrong = await client.post(
                "/auth/v1/token?grant_type=password",
                json={"email": "bob@example.com", "password": "not the password"},
            )
            assert_gotrue_error(wrong, 400, "invalid_credentials")
        locked = await client.post(
            "/auth/v1/token?grant_type=password",
            json={"email": "bob@example.com", "password": PASSWORD},
        )

    assert_gotrue_error(locked, 429, "over_request_rate_limit")
    assert locked.headers["retry-after"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/auth/v1/user", None),
        ("PUT", "/auth/v1/user", {}),
        ("PUT", "/auth/v1/user", {"password": "a new one 1234", "current_password": PASSWORD}),
        ("POST", "/auth/v1/logout", None),
    ],
)
async def test_auth_v1_takes_only_a_bearer_token_never_the_access_cookie(
    client: Client, accounts: Accounts, method: str, path: str, body: dict[str, Any] | None
) -> None:
    # supabase-js never sends cookies, so /auth/v1 reads none: a browser's ambient cookie
    # (even with a matching CSRF pair) is no credential there, and nothing is changed.
    token = (await sign_in(client))["access_token"]
    names = cookie_names(runtime_of(client).settings)
    cookies = f"{names.access}={token}; {names.csrf}=c5rf"

    response = await client.request(
        method, path, json=body, headers={"cookie": cookies, CSRF_HEADER: "c5rf"}
    )

    assert_gotrue_error(response, 401, "no_authorization")
    still = await client.get("/auth/v1/user", headers=bearer(token))
    assert still.status_code == 200, still.text
    assert (await sign_in(client))["access_token"]


async def test_a_token_answer_keeps_the_new_pair_when_the_user_can_no_longer_be_read(
    client: Client, accounts: Accounts
) -> None:
    # The pair is committed before the answer is built: if reading the user then fails (here
    # the session ended in between), the answer must still carry the pair, else the client
    # loses it and its retry with the old refresh token trips reuse detection.
    signed_in = await sign_in(client)
    claims = claims_of(signed_in["access_token"])
    issued = IssuedTokens(
        access_token=signed_in["access_token"],
        expires_in=signed_in["expires_in"],
        expires_at=signed_in["expires_at"],
        refresh_token=signed_in["refresh_token"],
        identity=Identity(
            user_id=accounts.ada,
            email="ada@example.com",
            status="active",
            db_role="authenticated",
            organization_id=accounts.acme,
            org_name="Acme",
            org_role="org_admin",
        ),
        session_id=claims["sid"],
    )
    ended = await client.post(
        "/auth/v1/logout?scope=local", headers=bearer(signed_in["access_token"])
    )
    assert ended.status_code == 204, ended.text

    answer = await session_answer(runtime_of(client), issued)

    body = msgspec.to_builtins(answer.content)
    assert body["access_token"] == signed_in["access_token"]
    assert body["refresh_token"] == signed_in["refresh_token"]
    assert body["user"]["id"] == str(accounts.ada)
    assert body["user"]["email"] == "ada@example.com"
    assert body["user"]["app_metadata"]["organization"]["organization_id"] == accounts.acme
    assert answer.headers["Cache-Control"] == "no-store"
