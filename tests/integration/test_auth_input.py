"""Hostile and malformed input on every /auth endpoint: always a 4xx with the JSON error shape."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.settings import Settings
from gateway.web.app import MAX_BODY_BYTES
from tests.integration.conftest import PASSWORD, Accounts, Client, bearer, login
from tests.support.in_process import GatewayClient

SECRET = "Hunter2-pa55word-that-must-never-be-echoed"
HUGE = "x" * 100_000
SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
NEEDS_BEARER = {"/auth/logout", "/auth/switch-organization"}
ENDPOINTS = ["/auth/login", "/auth/refresh", "/auth/logout", "/auth/switch-organization"]
JSON_TYPE = {"content-type": "application/json"}


def raw(value: Any) -> bytes:
    return json.dumps(value).encode()


def assert_error(
    response: httpx.Response, label: str = "", *, sentence: bool = True
) -> dict[str, str]:
    """A client error in the documented shape that repeats neither the password nor huge input."""
    where = f"{label}: {response.status_code} {response.text[:300]}"
    assert 400 <= response.status_code < 500, where
    assert response.headers["content-type"].startswith("application/json"), where
    body: dict[str, str] = response.json()
    assert set(body) == {"code", "message"}, where
    assert SNAKE_CASE.fullmatch(body["code"]), where
    message = body["message"]
    assert isinstance(message, str), where
    if sentence:  # the error shape: "message": "<human sentence>"
        assert message[:1].isupper(), where
        assert message.endswith((".", "!", "?")), where
    assert len(message) < 500, where
    assert SECRET not in response.text, where
    assert PASSWORD not in response.text, where
    return body


# Bodies per endpoint and kind of hostility; each body is sent as application/json.
COMMON: dict[str, list[bytes]] = {
    "malformed-json": [
        b'{"email": "ada@example.com", "password": "' + SECRET.encode(),
        b"{'password': '" + SECRET.encode() + b"'}",
        b"{} {}",
        rb'{"email": "\ud800@example.com", "password": "x"}',  # a lone surrogate
    ],
    "deeply-nested": [b"[" * 20_000 + b"]" * 20_000, b'{"email": ' + b"[" * 20_000],
    "invalid-utf8": [
        b'{"password": "\xff\xfe"}',
        b'{"email": "ada@example.com", "password": "' + SECRET.encode() + b'\xc3"}',
    ],
    "not-an-object": [b"[]", raw(["ada@example.com", SECRET]), raw(SECRET), b"42", b"true"],
}

BODIES: dict[str, dict[str, list[bytes]]] = {
    "/auth/login": {
        "unknown-fields": [
            raw({"email": "ada@example.com", "password": SECRET, "is_admin": True}),
            raw({"email": "ada@example.com", "password": SECRET, "organisation_id": 1}),
            raw({"email": "ada@example.com", "password": SECRET, "role": "postgres"}),
        ],
        "wrong-types": [
            raw({"email": 42, "password": SECRET}),
            raw({"email": {"$ne": ""}, "password": SECRET}),
            raw({"email": ["ada@example.com"], "password": SECRET}),
            raw({"email": "ada@example.com", "password": {"$gt": ""}}),
            raw({"email": "ada@example.com", "password": None}),
            raw({"email": "ada@example.com", "password": SECRET, "organization_id": "1"}),
            raw({"email": "ada@example.com", "password": SECRET, "organization_id": True}),
            raw({"email": "ada@example.com", "password": SECRET, "organization_id": {}}),
            raw({"email": "ada@example.com", "password": SECRET, "cookie": "yes"}),
            raw({"password": SECRET}),
            raw({}),
        ],
        "nul-bytes": [
            raw({"email": "ada\x00@example.com", "password": SECRET}),
            raw({"email": "ada@example.com\x00", "password": SECRET}),
            raw({"email": "\x00", "password": SECRET}),
            raw({"email": "ada@example.com", "password": SECRET + "\x00"}),
            raw({"email": "ada@example.com", "password": PASSWORD + "\x00"}),
        ],
        "huge-strings": [
            raw({"email": HUGE + "@example.com", "password": SECRET}),
            raw({"email": "ada@example.com", "password": SECRET + HUGE}),
            raw({"email": "ada@example.com", "password": PASSWORD + HUGE}),
        ],
        "out-of-range-numbers": [
            raw({"email": "ada@example.com", "password": SECRET, "organization_id": 1e308}),
            raw({"email": "ada@example.com", "password": SECRET, "organization_id": -1}),
            raw({"email": "ada@example.com", "password": SECRET, "organization_id": 0}),
            raw({"email": "ada@example.com", "password": SECRET, "organization_id": 2**53}),
            raw({"email": "ada@example.com", "password": SECRET, "organization_id": 2**64}),
            raw({"email": "ada@example.com", "password": SECRET, "organization_id": 1.5}),
            b'{"email": "ada@example.com", "password": "x", "organization_id": 1'
            + b"0" * 400
            + b"}",
        ],
    },
    "/auth/refresh": {
        "unknown-fields": [
            raw({"refresh_token": "pgw_rt_" + "A" * 43, "scope": "global"}),
            raw({"token": "pgw_rt_" + "A" * 43}),
        ],
        "wrong-types": [
            raw({"refresh_token": 42}),
            raw({"refresh_token": True}),
            raw({"refresh_token": {"$ne": ""}}),
            raw({"refresh_token": ["pgw_rt_" + "A" * 43]}),
            raw({"refresh_token": ""}),
        ],
        "nul-bytes": [
            raw({"refresh_token": "pgw_rt_" + "A" * 42 + "\x00"}),
            raw({"refresh_token": "\x00"}),
        ],
        "huge-strings": [raw({"refresh_token": "pgw_rt_" + HUGE})],
        "out-of-range-numbers": [
            raw({"refresh_token": 1e308}),
            raw({"refresh_token": -1}),
            raw({"refresh_token": 2**53}),
        ],
    },
    "/auth/logout": {
        "unknown-fields": [raw({"scope": "local", "everyone": True}), raw({"scop": "global"})],
        "wrong-types": [
            raw({"scope": 1}),
            raw({"scope": True}),
            raw({"scope": {"$ne": ""}}),
            raw({"scope": ["global"]}),
            raw({"scope": "everything"}),
        ],
        "nul-bytes": [raw({"scope": "global\x00"}), raw({"scope": "\x00"})],
        "huge-strings": [raw({"scope": HUGE})],
        "out-of-range-numbers": [raw({"scope": 1e308}), raw({"scope": -1}), raw({"scope": 2**53})],
    },
    "/auth/switch-organization": {
        "unknown-fields": [
            raw({"organization_id": 1, "user_id": 1}),
            raw({"organisation_id": 1}),
        ],
        "wrong-types": [
            raw({"organization_id": "1"}),
            raw({"organization_id": True}),
            raw({"organization_id": {"$gt": 0}}),
            raw({"organization_id": [1]}),
            raw({"organization_id": None}),
            raw({}),
        ],
        "nul-bytes": [raw({"organization_id": "1\x00"}), raw({"organization_id\x00": 1})],
        "huge-strings": [raw({"organization_id": HUGE})],
        "out-of-range-numbers": [
            raw({"organization_id": 1e308}),
            raw({"organization_id": -1}),
            raw({"organization_id": 0}),
            raw({"organization_id": 2**53}),
            raw({"organization_id": 2**64}),
            raw({"organization_id": -(2**63) - 1}),
            raw({"organization_id": 1.5}),
        ],
    },
}

CASES = [
    pytest.param(path, kind, bodies, id=f"{path.removeprefix('/auth/')}-{kind}")
    for path in ENDPOINTS
    for kind, bodies in [*COMMON.items(), *BODIES[path].items()]
]


async def headers_for(client: Client, path: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if path in NEEDS_BEARER:
        headers.update(bearer((await login(client))["access_token"]))
    return headers


@pytest.mark.parametrize(("path", "kind", "bodies"), CASES)
async def test_hostile_bodies_get_a_json_client_error(
    client: Client, path: str, kind: str, bodies: list[bytes]
) -> None:
    headers = await headers_for(client, path)

    responses = [await client.post(path, content=body, headers=headers) for body in bodies]

    for index, response in enumerate(responses):
        assert_error(response, f"{kind}[{index}]")


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_a_body_over_64_kib_is_refused_with_413(client: Client, path: str) -> None:
    headers = await headers_for(client, path)
    body = raw({"email": "ada@example.com", "password": SECRET + "x" * MAX_BODY_BYTES})

    response = await client.post(path, content=body, headers=headers)

    assert response.status_code == 413
    assert assert_error(response)["code"] == "payload_too_large"


@pytest.mark.parametrize("path", ENDPOINTS)
async def test_a_body_just_under_the_limit_is_read_and_judged_on_its_content(
    client: Client, path: str
) -> None:
    headers = await headers_for(client, path)
    padding = MAX_BODY_BYTES - 200
    body = raw({"email": "ada@example.com", "password": SECRET, "padding": "x" * padding})

    response = await client.post(path, content=body, headers=headers)

    assert response.status_code == 400
    assert assert_error(response)["code"] == "invalid_request"


async def test_invalid_input_does_not_sign_anyone_in(client: Client) -> None:
    bodies = [
        raw({"email": "ada@example.com", "password": PASSWORD, "organization_id": True}),
        raw({"email": "ada@example.com", "password": PASSWORD, "organisation_id": 1}),
        raw({"email": "ada@example.com", "password": PASSWORD + "\x00"}),
        raw({"email": "ada@example.com", "password": PASSWORD + "x" * 1024}),
    ]

    responses = [
        await client.post("/auth/login", content=body, headers=JSON_TYPE) for body in bodies
    ]

    assert [r.status_code for r in responses] == [400, 400, 401, 400]
    for response in responses:
        assert "access_token" not in response.text
        assert "set-cookie" not in response.headers


async def test_login_refuses_a_body_without_a_content_type(client: Client) -> None:
    # fetch() with an untyped Blob sends no Content-Type and needs no CORS preflight.
    response = await client.post(
        "/auth/login", content=raw({"email": "ada@example.com", "password": PASSWORD})
    )

    assert response.status_code == 415
    assert assert_error(response)["code"] == "unsupported_media_type"


async def test_login_refuses_a_text_plain_body_that_an_html_form_could_send(
    client: Client,
) -> None:
    # <form enctype="text/plain"> can post {"email":…,"password":"…=","cookie":true} cross-site
    # without a CORS preflight; accepting it lets another site sign a browser into its account.
    body = raw({"email": "ada@example.com", "password": PASSWORD, "cookie": True})

    response = await client.post(
        "/auth/login", content=body, headers={"Content-Type": "text/plain"}
    )

    assert response.status_code == 415
    assert assert_error(response)["code"] == "unsupported_media_type"
    assert "set-cookie" not in response.headers


# GET /auth/me without usable credentials.


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        pytest.param(None, "missing_token", id="no-header"),
        # An Authorization header that is not a usable bearer token is refused as such, as at
        # /rest, and never falls back to a cookie.
        pytest.param("Bearer", "invalid_token", id="bearer-without-token"),
        pytest.param("Bearer    ", "invalid_token", id="bearer-blank-token"),
        pytest.param("Basic YWRhQGV4YW1wbGUuY29tOnB3", "invalid_token", id="basic"),
        pytest.param("Bearer garbage", "invalid_token", id="garbage"),
        pytest.param("Bearer a.b.c", "invalid_token", id="three-garbage-parts"),
        pytest.param("Bearer " + "A" * 20_000, "invalid_token", id="huge-token"),
    ],
)
async def test_me_without_a_usable_token_is_401_with_a_bearer_challenge(
    client: Client, authorization: str | None, code: str
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}

    response = await client.get("/auth/me", headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert assert_error(response, sentence=False)["code"] == code


@pytest.mark.parametrize(
    "token", ["garbage", "a.b.c", "A" * 20_000], ids=["garbage", "a.b.c", "huge"]
)
async def test_an_invalid_token_is_explained_in_a_sentence(client: Client, token: str) -> None:
    response = await client.get("/auth/me", headers=bearer(token))

    assert assert_error(response)["code"] == "invalid_token"


async def test_me_refuses_a_valid_token_sent_under_another_scheme(client: Client) -> None:
    token = (await login(client))["access_token"]

    response = await client.get("/auth/me", headers={"Authorization": f"Basic {token}"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_me_accepts_the_bearer_scheme_in_any_case(client: Client, accounts: Accounts) -> None:
    token = (await login(client))["access_token"]

    response = await client.get("/auth/me", headers={"Authorization": f"bearer {token}"})

    assert response.status_code == 200
    assert response.json()["user"]["user_id"] == accounts.ada


# The OpenAPI document.


async def test_schema_documents_every_auth_endpoint_with_bodies_and_error_statuses(
    client: Client,
) -> None:
    response = await client.get("/schema")

    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ENDPOINTS:
        operation = paths[path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert body, path
        success = "204" if path == "/auth/logout" else "200"
        assert {success, "400", "401", "403", "413", "429"} <= set(operation["responses"]), path
    assert {"200", "401", "403", "429"} <= set(paths["/auth/me"]["get"]["responses"])


async def test_schema_describes_errors_with_the_code_and_message_shape(client: Client) -> None:
    document = (await client.get("/schema")).json()

    unauthorized = document["paths"]["/auth/me"]["get"]["responses"]["401"]
    reference = unauthorized["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][reference.rsplit("/", 1)[-1]]
    assert set(schema["properties"]) == {"code", "message"}
    login_schema = document["components"]["schemas"]["LoginRequest"]
    assert {"email", "password", "organization_id", "cookie"} <= set(login_schema["properties"])
    assert set(login_schema["required"]) == {"email", "password"}


@pytest.mark.parametrize("path", ["/auth/refresh", "/auth/logout"])
async def test_schema_marks_the_optional_bodies_as_optional(client: Client, path: str) -> None:
    # /auth/refresh may rely on the refresh cookie and /auth/logout defaults to scope=local.
    document = (await client.get("/schema")).json()

    assert document["paths"][path]["post"]["requestBody"].get("required", False) is False


async def test_the_optional_bodies_may_indeed_be_left_out(client: Client) -> None:
    token = (await login(client))["access_token"]

    logout = await client.post("/auth/logout", headers=bearer(token))
    refresh = await client.post("/auth/refresh")

    assert logout.status_code == 204
    assert refresh.status_code == 401
    assert assert_error(refresh)["code"] == "missing_token"


# The per-address rate limit on /auth/*.


@pytest.fixture
async def limited_client(auth_settings: Settings, accounts: Accounts) -> AsyncIterator[Client]:
    settings = auth_settings.model_copy(update={"auth_rate_limit": 3})
    async with GatewayClient(settings) as test_client:
        yield test_client


async def exhaust_the_limit(client: Client) -> list[httpx.Response]:
    body = {"email": "ada@example.com", "password": SECRET}
    return [await client.post("/auth/login", json=body) for _ in range(4)]


async def test_the_fourth_auth_request_in_a_minute_from_one_address_is_refused_with_429(
    limited_client: Client,
) -> None:
    responses = await exhaust_the_limit(limited_client)

    assert [r.status_code for r in responses] == [401, 401, 401, 429]
    refused = responses[-1]
    assert assert_error(refused)["code"] == "too_many_requests"
    assert refused.headers["ratelimit-limit"] == "3"
    assert refused.headers["ratelimit-remaining"] == "0"
    assert 0 < int(refused.headers["ratelimit-reset"]) <= 60


async def test_a_rate_limited_answer_says_when_to_retry(limited_client: Client) -> None:
    refused = (await exhaust_the_limit(limited_client))[-1]

    assert refused.status_code == 429
    assert "retry-after" in refused.headers, dict(refused.headers)
    assert 0 < int(refused.headers["retry-after"]) <= 60


async def test_the_limit_covers_every_auth_endpoint(limited_client: Client) -> None:
    await exhaust_the_limit(limited_client)

    me = await limited_client.get("/auth/me")
    refresh = await limited_client.post("/auth/refresh")

    assert me.status_code == 429
    assert refresh.status_code == 429


async def test_the_limit_covers_storage_presign_too(limited_client: Client) -> None:
    # Each /storage/presign verifies a token against the store and may sign a thousand URLs.
    await exhaust_the_limit(limited_client)

    presign = await limited_client.post(
        "/storage/presign", json={"bucket": "b", "operation": "get", "keys": ["k"]}
    )

    assert presign.status_code == 429


async def test_a_forged_x_forwarded_for_does_not_buy_a_fresh_budget(
    limited_client: Client,
) -> None:
    await exhaust_the_limit(limited_client)

    response = await limited_client.post(
        "/auth/login",
        json={"email": "ada@example.com", "password": SECRET},
        headers={"X-Forwarded-For": "203.0.113.7"},
    )

    assert response.status_code == 429


async def test_healthz_is_not_rate_limited(limited_client: Client) -> None:
    await exhaust_the_limit(limited_client)

    responses = [await limited_client.get("/healthz") for _ in range(5)]

    assert [r.status_code for r in responses] == [200] * 5
    assert "ratelimit-limit" not in responses[-1].headers
