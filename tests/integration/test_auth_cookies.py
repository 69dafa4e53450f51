"""Cookie mode of /auth: HttpOnly token cookies, a double-submit CSRF token, no session fixation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from gateway.settings import Settings
from tests.integration.conftest import PASSWORD, Accounts, Client, bearer, login
from tests.support.in_process import GatewayClient

PLANTED_REFRESH = "pgw_rt_" + "A" * 43  # well formed, so only the store can refuse it


@dataclass(frozen=True)
class SetCookie:
    """One Set-Cookie header; attribute names lower-cased, flags (HttpOnly, Secure) map to ""."""

    name: str
    value: str
    attributes: dict[str, str]


def set_cookies(response: httpx.Response) -> dict[str, SetCookie]:
    parsed: dict[str, SetCookie] = {}
    for header in response.headers.get_list("set-cookie"):
        pair, *attributes = (part.strip() for part in header.split(";"))
        name, _, value = pair.partition("=")
        assert name not in parsed, f"{name} is set twice"
        parsed[name] = SetCookie(
            name=name,
            value=value,
            attributes={
                key.lower(): attr_value
                for key, _, attr_value in (attribute.partition("=") for attribute in attributes)
            },
        )
    return parsed


def cookie_header(**cookies: str) -> dict[str, str]:
    """An explicit Cookie header (the client's jar is emptied, so this is all the server sees)."""
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}


@dataclass(frozen=True)
class CookieSession:
    access: str
    refresh: str
    csrf: str
    body: dict[str, Any]


async def cookie_login(client: Client, email: str = "ada@example.com") -> CookieSession:
    response = await login_response(client, email)
    assert response.status_code == 200, response.text
    cookies = set_cookies(response)
    client.cookies.clear()
    return CookieSession(
        access=cookies["gw_access"].value,
        refresh=cookies["gw_refresh"].value,
        csrf=cookies["gw_csrf"].value,
        body=response.json(),
    )


async def login_response(
    client: Client, email: str = "ada@example.com", headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.post(
        "/auth/login",
        json={"email": email, "password": PASSWORD, "cookie": True},
        headers=headers,
    )


@pytest.fixture
async def secure_client(auth_settings: Settings, accounts: Accounts) -> AsyncIterator[Client]:
    settings = auth_settings.model_copy(update={"cookie_secure": True})
    async with GatewayClient(settings) as test_client:
        yield test_client


# Login in cookie mode.


async def test_cookie_login_answers_with_a_csrf_token_and_no_tokens_in_the_body(
    client: Client, accounts: Accounts
) -> None:
    response = await login_response(client)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert {"csrf_token", "expires_in", "expires_at", "user", "organization"} <= set(body)
    assert "access_token" not in body
    assert "refresh_token" not in body
    assert body["user"]["user_id"] == accounts.ada
    assert body["organization"]["organization_id"] == accounts.acme


async def test_cookie_login_sets_httponly_lax_cookies_scoped_by_path(
    client: Client, auth_settings: Settings
) -> None:
    response = await login_response(client)

    cookies = set_cookies(response)
    assert set(cookies) == {"gw_access", "gw_refresh", "gw_csrf"}
    access, refresh, csrf = cookies["gw_access"], cookies["gw_refresh"], cookies["gw_csrf"]
    assert access.attributes == {
        "httponly": "",
        "samesite": "lax",
        "path": "/",
        "max-age": str(auth_settings.access_token_ttl),
    }
    assert refresh.attributes == {
        "httponly": "",
        "samesite": "lax",
        "path": "/auth",
        "max-age": str(auth_settings.refresh_token_ttl),
    }
    assert csrf.attributes == {
        "samesite": "lax",
        "path": "/",
        "max-age": str(auth_settings.refresh_token_ttl),
    }
    assert csrf.value == response.json()["csrf_token"]
    assert refresh.value.startswith("pgw_rt_")
    assert access.value.count(".") == 2  # a compact JWS


async def test_secure_cookie_login_uses_host_prefixed_names_for_all_three_cookies(
    secure_client: Client,
) -> None:
    response = await login_response(secure_client)

    assert response.status_code == 200
    cookies = set_cookies(response)
    live = {name: cookie for name, cookie in cookies.items() if cookie.attributes["max-age"] != "0"}
    assert set(live) == {"__Host-gw_access", "__Host-gw_refresh", "__Host-gw_csrf"}
    for cookie in live.values():
        assert "secure" in cookie.attributes
        assert cookie.attributes["samesite"] == "lax"
        assert "domain" not in cookie.attributes  # __Host- forbids it; host-only for all three
        assert cookie.attributes["path"] == "/"  # and demands Path=/
    assert "httponly" in cookies["__Host-gw_access"].attributes
    assert "httponly" in cookies["__Host-gw_refresh"].attributes
    assert "httponly" not in cookies["__Host-gw_csrf"].attributes
    assert cookies["__Host-gw_csrf"].value == response.json()["csrf_token"]
    # The refresh cookie of earlier versions, which a sibling subdomain could plant, is expired.
    retired = cookies["__Secure-gw_refresh"]
    assert (retired.attributes["max-age"], retired.attributes["path"]) == ("0", "/auth")


async def test_the_retired_secure_refresh_cookie_is_never_read(secure_client: Client) -> None:
    cookies = set_cookies(await login_response(secure_client))
    secure_client.cookies.clear()
    csrf = cookies["__Host-gw_csrf"].value
    planted = {"__Secure-gw_refresh": cookies["__Host-gw_refresh"].value, "__Host-gw_csrf": csrf}

    response = await secure_client.post(
        "/auth/refresh", headers={**cookie_header(**planted), "X-CSRF-Token": csrf}
    )

    assert response.status_code == 401
    assert response.json()["code"] == "missing_token"


async def test_secure_app_reads_back_its_prefixed_cookie_names(secure_client: Client) -> None:
    cookies = set_cookies(await login_response(secure_client))
    secure_client.cookies.clear()
    access = cookies["__Host-gw_access"].value

    with_prefixed_name = await secure_client.get(
        "/auth/me", headers=cookie_header(**{"__Host-gw_access": access})
    )
    with_plain_name = await secure_client.get("/auth/me", headers=cookie_header(gw_access=access))

    assert with_prefixed_name.status_code == 200
    assert with_plain_name.status_code == 401  # a plain name may come from a subdomain or HTTP
    assert with_plain_name.json()["code"] == "missing_token"


# Using the cookies.


async def test_me_accepts_the_access_cookie_alone_without_csrf(
    client: Client, accounts: Accounts
) -> None:
    session = await cookie_login(client)

    response = await client.get("/auth/me", headers=cookie_header(gw_access=session.access))

    assert response.status_code == 200
    assert response.json()["user"]["user_id"] == accounts.ada


@pytest.mark.parametrize(
    ("send_csrf_cookie", "csrf_header"),
    [
        pytest.param(True, None, id="no-header"),
        pytest.param(True, "", id="empty-header"),
        pytest.param(True, "wrong", id="wrong-header"),
        pytest.param(False, "right", id="right-header-but-no-csrf-cookie"),
    ],
)
async def test_cookie_refresh_without_a_matching_csrf_header_is_refused(
    client: Client, send_csrf_cookie: bool, csrf_header: str | None
) -> None:
    session = await cookie_login(client)
    cookies = {"gw_access": session.access, "gw_refresh": session.refresh}
    if send_csrf_cookie:
        cookies["gw_csrf"] = session.csrf
    headers = cookie_header(**cookies)
    if csrf_header is not None:
        headers["X-CSRF-Token"] = {"": "", "wrong": "not-the-csrf-token", "right": session.csrf}[
            csrf_header
        ]

    refused = await client.post("/auth/refresh", headers=headers)

    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    assert "set-cookie" not in refused.headers
    # The refused attempt did not spend the refresh token.
    retried = await client.post(
        "/auth/refresh",
        headers={
            **cookie_header(gw_refresh=session.refresh, gw_csrf=session.csrf),
            "X-CSRF-Token": session.csrf,
        },
    )
    assert retried.status_code == 200


async def test_cookie_refresh_with_the_csrf_header_rotates_every_cookie(client: Client) -> None:
    session = await cookie_login(client)

    response = await client.post(
        "/auth/refresh",
        headers={
            **cookie_header(gw_refresh=session.refresh, gw_csrf=session.csrf),
            "X-CSRF-Token": session.csrf,
        },
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert "access_token" not in body
    assert "refresh_token" not in body
    cookies = set_cookies(response)
    assert set(cookies) == {"gw_access", "gw_refresh", "gw_csrf"}
    assert cookies["gw_refresh"].value != session.refresh
    assert cookies["gw_refresh"].attributes["path"] == "/auth"
    assert cookies["gw_access"].value != session.access
    assert cookies["gw_csrf"].value == body["csrf_token"]
    me = await client.get("/auth/me", headers=cookie_header(gw_access=cookies["gw_access"].value))
    assert me.status_code == 200


async def test_a_browser_cookie_jar_sends_the_refresh_cookie_to_auth_refresh(
    client: Client,
) -> None:
    signed_in = await login_response(client)
    first_refresh = client.cookies.get("gw_refresh", path="/auth")

    response = await client.post(
        "/auth/refresh", headers={"X-CSRF-Token": signed_in.json()["csrf_token"]}
    )

    assert response.status_code == 200
    assert client.cookies.get("gw_refresh", path="/auth") not in {None, first_refresh}
    me = await client.get("/auth/me")
    assert me.status_code == 200


async def test_cookie_switch_organization_needs_the_csrf_header(
    client: Client, accounts: Accounts
) -> None:
    session = await cookie_login(client)
    cookies = cookie_header(
        gw_access=session.access, gw_refresh=session.refresh, gw_csrf=session.csrf
    )
    body = {"organization_id": accounts.globex}

    refused = await client.post("/auth/switch-organization", json=body, headers=cookies)
    switched = await client.post(
        "/auth/switch-organization", json=body, headers={**cookies, "X-CSRF-Token": session.csrf}
    )

    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    assert switched.status_code == 200
    assert "access_token" not in switched.json()
    assert switched.json()["organization"]["organization_id"] == accounts.globex
    assert set(set_cookies(switched)) == {"gw_access", "gw_refresh", "gw_csrf"}


# Logout.


async def test_cookie_logout_without_csrf_is_refused_and_the_session_keeps_working(
    client: Client,
) -> None:
    session = await cookie_login(client)

    refused = await client.post(
        "/auth/logout", headers=cookie_header(gw_access=session.access, gw_csrf=session.csrf)
    )

    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    assert "set-cookie" not in refused.headers
    me = await client.get("/auth/me", headers=cookie_header(gw_access=session.access))
    assert me.status_code == 200


async def test_cookie_logout_with_csrf_clears_the_cookies_and_ends_the_session(
    client: Client,
) -> None:
    session = await cookie_login(client)

    response = await client.post(
        "/auth/logout",
        headers={
            **cookie_header(gw_access=session.access, gw_csrf=session.csrf),
            "X-CSRF-Token": session.csrf,
        },
    )

    assert response.status_code == 204
    cleared = set_cookies(response)
    assert set(cleared) == {"gw_access", "gw_refresh", "gw_csrf"}
    for cookie in cleared.values():
        assert cookie.attributes["max-age"] == "0"
        assert cookie.value in {"", '""'}
    # A cookie is only removed by a Set-Cookie with the same path.
    assert cleared["gw_access"].attributes["path"] == "/"
    assert cleared["gw_refresh"].attributes["path"] == "/auth"
    assert cleared["gw_csrf"].attributes["path"] == "/"
    me = await client.get("/auth/me", headers=cookie_header(gw_access=session.access))
    assert me.status_code == 401
    assert me.json()["code"] == "session_revoked"
    assert me.headers["www-authenticate"].startswith("Bearer")
    refreshed = await client.post(
        "/auth/refresh",
        headers={
            **cookie_header(gw_refresh=session.refresh, gw_csrf=session.csrf),
            "X-CSRF-Token": session.csrf,
        },
    )
    assert refreshed.status_code == 401


async def test_a_browser_cookie_jar_is_emptied_by_logout(client: Client) -> None:
    signed_in = await login_response(client)

    response = await client.post(
        "/auth/logout", headers={"X-CSRF-Token": signed_in.json()["csrf_token"]}
    )

    assert response.status_code == 204
    assert dict(client.cookies) == {}


def forged(token: str) -> str:
    """``token`` with one signature character changed: well formed, claims intact, refused."""
    header, payload, signature = token.split(".")
    middle = len(signature) // 2
    swapped = "A" if signature[middle] != "A" else "B"
    return ".".join([header, payload, signature[:middle] + swapped + signature[middle + 1 :]])


async def refresh_by_cookie(client: Client, session: CookieSession) -> httpx.Response:
    return await client.post(
        "/auth/refresh",
        headers={
            **cookie_header(gw_refresh=session.refresh, gw_csrf=session.csrf),
            "X-CSRF-Token": session.csrf,
        },
    )


async def test_logout_with_an_invalid_access_cookie_ends_the_session_of_the_refresh_cookie(
    client: Client,
) -> None:
    # A token signed by a pruned key, or expired past the leeway, is refused like this one; the
    # refresh cookie beside it would sign the browser back in unless logout ends its session.
    session = await cookie_login(client)

    response = await client.post(
        "/auth/logout",
        headers={
            **cookie_header(
                gw_access=forged(session.access), gw_refresh=session.refresh, gw_csrf=session.csrf
            ),
            "X-CSRF-Token": session.csrf,
        },
    )

    assert response.status_code == 204, response.text
    assert set(set_cookies(response)) == {"gw_access", "gw_refresh", "gw_csrf"}
    refreshed = await refresh_by_cookie(client, session)
    assert refreshed.status_code == 401
    assert refreshed.json()["code"] == "session_revoked"
    me = await client.get("/auth/me", headers=cookie_header(gw_access=session.access))
    assert me.json()["code"] == "session_revoked"


async def test_logout_with_the_access_cookie_of_an_ended_session_ends_the_refresh_cookies_session(
    client: Client,
) -> None:
    ended = await cookie_login(client)
    live = await cookie_login(client)
    first = await client.post(
        "/auth/logout",
        headers={
            **cookie_header(gw_refresh=ended.refresh, gw_csrf=ended.csrf),
            "X-CSRF-Token": ended.csrf,
        },
    )
    assert first.status_code == 204

    response = await client.post(
        "/auth/logout",
        headers={
            **cookie_header(gw_access=ended.access, gw_refresh=live.refresh, gw_csrf=live.csrf),
            "X-CSRF-Token": live.csrf,
        },
    )

    assert response.status_code == 204, response.text
    assert (await refresh_by_cookie(client, live)).status_code == 401


async def test_logout_with_an_invalid_access_cookie_and_no_refresh_cookie_is_refused(
    client: Client,
) -> None:
    session = await cookie_login(client)

    response = await client.post(
        "/auth/logout",
        headers={
            **cookie_header(gw_access=forged(session.access), gw_csrf=session.csrf),
            "X-CSRF-Token": session.csrf,
        },
    )

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert (await refresh_by_cookie(client, session)).status_code == 200


async def test_logout_falling_back_to_the_refresh_cookie_needs_the_csrf_header(
    client: Client,
) -> None:
    session = await cookie_login(client)

    response = await client.post(
        "/auth/logout",
        headers={
            "Authorization": f"Bearer {forged(session.access)}",
            **cookie_header(gw_refresh=session.refresh, gw_csrf=session.csrf),
        },
    )

    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    assert "set-cookie" not in response.headers
    assert (await refresh_by_cookie(client, session)).status_code == 200


async def test_an_invalid_access_token_ends_nobody_elses_session(client: Client) -> None:
    # The forged token still names Bob's session in its claims: only a verified token may end it.
    bob = await login(client, "bob@example.com")
    ada = await cookie_login(client)

    alone = await client.post("/auth/logout", headers=bearer(forged(bob["access_token"])))
    beside_adas_cookie = await client.post(
        "/auth/logout",
        headers={
            **bearer(forged(bob["access_token"])),
            **cookie_header(gw_refresh=ada.refresh, gw_csrf=ada.csrf),
            "X-CSRF-Token": ada.csrf,
        },
    )

    assert alone.status_code == 401
    assert alone.json()["code"] == "invalid_token"
    assert beside_adas_cookie.status_code == 204
    assert (await client.get("/auth/me", headers=bearer(bob["access_token"]))).status_code == 200
    assert (await refresh_by_cookie(client, ada)).status_code == 401


# Session fixation and bearer requests.


async def test_login_replaces_cookies_planted_before_it(client: Client) -> None:
    planted = {"gw_access": "planted.access.token", "gw_refresh": PLANTED_REFRESH}
    planted["gw_csrf"] = "planted-csrf"

    response = await login_response(client, headers=cookie_header(**planted))
    client.cookies.clear()

    assert response.status_code == 200
    fresh = set_cookies(response)
    assert set(fresh) == set(planted)
    for name, value in planted.items():
        assert fresh[name].value != value
    assert response.json()["csrf_token"] != planted["gw_csrf"]
    replayed = await client.post(
        "/auth/refresh",
        headers={
            **cookie_header(gw_refresh=planted["gw_refresh"], gw_csrf=planted["gw_csrf"]),
            "X-CSRF-Token": planted["gw_csrf"],
        },
    )
    assert replayed.status_code == 401
    assert replayed.json()["code"] == "invalid_refresh_token"


async def test_bearer_logout_needs_no_csrf(client: Client) -> None:
    tokens = await login(client)

    response = await client.post("/auth/logout", headers=bearer(tokens["access_token"]))

    assert response.status_code == 204
    me = await client.get("/auth/me", headers=bearer(tokens["access_token"]))
    assert me.json()["code"] == "session_revoked"


async def test_bearer_token_wins_over_cookies_and_needs_no_csrf(
    client: Client, accounts: Accounts
) -> None:
    cookie_session = await cookie_login(client, "bob@example.com")
    tokens = await login(client)

    response = await client.post(
        "/auth/switch-organization",
        json={"organization_id": accounts.globex, "refresh_token": tokens["refresh_token"]},
        headers={
            **bearer(tokens["access_token"]),
            **cookie_header(gw_access=cookie_session.access, gw_csrf=cookie_session.csrf),
        },
    )

    assert response.status_code == 200
    body = response.json()
    assert "access_token" in body  # a bearer caller gets its tokens in the body
    assert body["user"]["user_id"] == accounts.ada
    assert "set-cookie" not in response.headers
