"""One credential reader for /rest and /auth: every Cookie field, no duplicates, no fallbacks.

Before, /rest took the first access cookie, /auth the last, and /auth read only the first
``Cookie`` field, so a request with two values had two identities; a non-Bearer
``Authorization`` made /auth fall back to the cookie while /rest refused it; and the CSRF check
at the mount compared the method against an upper-case deny-list.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import anyio.to_thread
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import GatewayError
from gateway.proxy.mount import PostgrestMount
from gateway.sessions.credentials import (
    SAFE_METHODS,
    access_token,
    needs_csrf,
    read_credentials,
)
from gateway.sessions.errors import CsrfFailed, DuplicateAuthorization, DuplicateCookie
from gateway.settings import Settings
from gateway.tokens.errors import InvalidToken
from tests.integration.conftest import Client, login, runtime_of
from tests.security.conftest import with_a_dead_upstream

NAMES = frozenset({b"gw_access", b"gw_refresh", b"gw_csrf"})
CSRF = b"x-csrf-token"


@pytest.fixture
def auth_settings(auth_settings: Settings) -> Settings:
    """Plain-HTTP cookie names; upstream is a dead port (a request that gets through: 502)."""
    return with_a_dead_upstream(auth_settings)


# The reader, as pure logic.

pair_name = st.sampled_from([b"gw_access", b"gw_refresh", b"gw_csrf", b"theme", b"lang", b"sid"])
pair_value = st.text("abcXYZ019._-", min_size=1, max_size=8).map(str.encode)


@given(
    pairs=st.lists(st.tuples(pair_name, pair_value), max_size=8),
    cuts=st.lists(st.integers(0, 8), max_size=3),
)
def test_cookies_read_the_same_however_they_are_split_across_fields_and_never_twice(
    pairs: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    bounds = sorted({0, len(pairs), *(min(c, len(pairs)) for c in cuts)})
    fields = [
        (b"cookie", b"; ".join(n + b"=" + v for n, v in pairs[start:end]))
        for start, end in itertools.pairwise(bounds)
    ]
    ours = [name for name, _ in pairs if name in NAMES]

    if len(ours) != len(set(ours)):
        with pytest.raises(DuplicateCookie):
            read_credentials(fields, NAMES, CSRF)
        return
    presented = read_credentials(fields, NAMES, CSRF)
    assert presented.cookies == {name: value for name, value in pairs if name in NAMES}


def test_a_gateway_cookie_in_the_second_cookie_field_is_read() -> None:
    presented = read_credentials(
        [(b"cookie", b"theme=dark"), (b"Cookie", b"gw_access=a.b.c")], NAMES, CSRF
    )

    assert access_token(presented, b"gw_access") == ("a.b.c", True)


@pytest.mark.parametrize(
    "fields",
    [
        [(b"cookie", b"gw_access=one; gw_access=two")],
        [(b"cookie", b"gw_access=one"), (b"cookie", b"gw_access=two")],
        [(b"cookie", b"gw_refresh=one;gw_refresh=one")],
        [(b"cookie", b" gw_csrf =a"), (b"cookie", b"gw_csrf=b")],
    ],
    ids=["one-field", "two-fields", "same-value", "spaced-name"],
)
def test_a_gateway_cookie_sent_twice_is_refused(fields: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(DuplicateCookie) as refused:
        read_credentials(fields, NAMES, CSRF)

    assert refused.value.status == 400


def test_two_authorization_fields_are_refused() -> None:
    with pytest.raises(DuplicateAuthorization):
        read_credentials(
            [(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")], NAMES, CSRF
        )


@pytest.mark.parametrize(
    "authorization", [b"Basic YTpi", b"Bearer", b"Bearer   ", b"Token abc", b"bearerabc"]
)
def test_an_authorization_that_is_not_a_bearer_token_never_falls_back_to_the_cookie(
    authorization: bytes,
) -> None:
    presented = read_credentials(
        [(b"authorization", authorization), (b"cookie", b"gw_access=a.b.c")], NAMES, CSRF
    )

    with pytest.raises(InvalidToken):
        access_token(presented, b"gw_access")


method_token = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-", min_size=1)


@given(method=st.one_of(method_token, st.sampled_from(["patch", "Post", "dElEtE", "PROPFIND"])))
def test_every_method_but_get_head_and_options_needs_the_csrf_token_in_any_case(
    method: str,
) -> None:
    assert needs_csrf(method) is (method.upper() not in SAFE_METHODS)


@pytest.mark.parametrize("method", ["get", "Head", "OPTIONS"])
def test_safe_methods_in_any_case_need_no_csrf_token(method: str) -> None:
    assert not needs_csrf(method)


# The mount and /auth, on a real application and store.

pytestmark_sqlite = pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)


@pytestmark_sqlite
@pytest.mark.parametrize("method", ["patch", "post", "Put", "delete", "PROPFIND", "merge"])
async def test_the_mount_wants_the_csrf_token_for_an_unsafe_method_in_any_letter_case(
    client: Client, auth_settings: Settings, method: str
) -> None:
    csrf = (await login(client, cookie=True))["csrf_token"]
    access = client.cookies["gw_access"]
    mount = PostgrestMount(auth_settings, lambda: runtime_of(client).mount_dependencies)
    cookie = f"gw_access={access}; gw_csrf={csrf}".encode()

    def authorize(*extra: tuple[bytes, bytes]) -> bytes | None:
        return mount._authorize(
            runtime_of(client).mount_dependencies, method, [(b"cookie", cookie), *extra]
        )

    with pytest.raises(CsrfFailed):
        authorize()
    with pytest.raises(CsrfFailed):
        authorize((b"x-csrf-token", b"wrong"))
    assert authorize((b"x-csrf-token", csrf.encode())) == b"Bearer " + access.encode()


@pytestmark_sqlite
@pytest.mark.parametrize("method", ["get", "head", "options"])
async def test_the_mount_lets_safe_methods_in_any_letter_case_through_without_a_csrf_token(
    client: Client, auth_settings: Settings, method: str
) -> None:
    await login(client, cookie=True)
    access = client.cookies["gw_access"]
    mount = PostgrestMount(auth_settings, lambda: runtime_of(client).mount_dependencies)

    forwarded = mount._authorize(
        runtime_of(client).mount_dependencies, method, [(b"cookie", f"gw_access={access}".encode())]
    )

    assert forwarded == b"Bearer " + access.encode()


class Answer:
    def __init__(self, status: int, headers: dict[bytes, bytes], body: bytes) -> None:
        self.status_code = status
        self.headers = headers
        self.text = body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.text)


async def send_raw(
    client: Client, method: str, path: str, headers: list[tuple[str, str]]
) -> Answer:
    """One request straight into the running application, with header fields exactly as given.

    The test client joins repeated fields into one (``a, b``); a real server hands them over
    one by one, and that is what this does.
    """
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")]
        + [(name.lower().encode(), value.encode()) for name, value in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    # The application runs on the test client's event loop (its lifespan started there).
    portal = client.blocking_portal
    await anyio.to_thread.run_sync(lambda: portal.call(client.app, scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(start["status"], {k.lower(): v for k, v in start["headers"]}, body)


def assert_refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


@pytestmark_sqlite
@pytest.mark.parametrize("where", ["/rest/todos", "/auth/me"])
async def test_a_duplicated_access_cookie_is_refused_with_400_at_rest_and_auth(
    client: Client, where: str
) -> None:
    await login(client, cookie=True)
    access = client.cookies["gw_access"]
    client.cookies.clear()

    response = await send_raw(
        client, "GET", where, [("Cookie", f"gw_access={access}"), ("Cookie", "gw_access=planted")]
    )

    assert_refused(response, 400, "duplicate_cookie")


@pytestmark_sqlite
async def test_a_duplicated_refresh_cookie_is_refused_at_refresh_before_it_is_spent(
    client: Client,
) -> None:
    csrf = (await login(client, cookie=True))["csrf_token"]
    refresh = client.cookies.get("gw_refresh", path="/auth")
    client.cookies.clear()
    planted = "pgw_rt_" + "B" * 43

    swapped = await client.post(
        "/auth/refresh",
        headers={
            "Cookie": f"gw_refresh={planted}; gw_csrf={csrf}; gw_refresh={refresh}",
            "X-CSRF-Token": csrf,
        },
    )
    genuine = await client.post(
        "/auth/refresh",
        headers={"Cookie": f"gw_refresh={refresh}; gw_csrf={csrf}", "X-CSRF-Token": csrf},
    )

    assert_refused(swapped, 400, "duplicate_cookie")
    assert genuine.status_code == 200


@pytestmark_sqlite
@pytest.mark.parametrize("where", ["/rest/todos", "/auth/me"])
async def test_the_access_cookie_in_a_second_cookie_field_is_read_at_rest_and_auth(
    client: Client, where: str
) -> None:
    await login(client, cookie=True)
    access = client.cookies["gw_access"]
    client.cookies.clear()

    response = await send_raw(
        client, "GET", where, [("Cookie", "theme=dark"), ("Cookie", f"gw_access={access}")]
    )

    # /rest gets past authentication to the dead upstream; /auth/me answers.
    assert response.status_code == (502 if where.startswith("/rest") else 200), response.text


@pytestmark_sqlite
@pytest.mark.parametrize("where", ["/rest/todos", "/auth/me"])
async def test_a_basic_authorization_with_a_valid_cookie_is_refused_at_rest_and_auth(
    client: Client, where: str
) -> None:
    await login(client, cookie=True)

    response = await client.get(where, headers={"Authorization": "Basic YWRhOnB3"})

    assert_refused(response, 401, "invalid_token")
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytestmark_sqlite
async def test_the_mount_and_auth_agree_on_who_a_request_is(client: Client) -> None:
    """The same headers authenticate, or fail, the same way at both doors."""
    await login(client, cookie=True)
    access = client.cookies["gw_access"]
    client.cookies.clear()
    cases = [
        [("Cookie", f"gw_access={access}")],
        [("Cookie", "lang=en"), ("Cookie", f"gw_access={access}")],
        [("Cookie", f"gw_access={access}; gw_access=x")],
        [("Authorization", "Basic eA=="), ("Cookie", f"gw_access={access}")],
        [("Authorization", "Bearer "), ("Cookie", f"gw_access={access}")],
        [("Cookie", "gw_access=")],
    ]
    for headers in cases:
        # A cookie-authenticated POST without the CSRF token is refused 403 once the mount has
        # found the cookie; an anonymous one goes on to the dead upstream (502).
        rest = await send_raw(client, "POST", "/rest/todos", headers)
        auth = await send_raw(client, "GET", "/auth/me", headers)
        identified_at_rest = rest.status_code == 403 and rest.json()["code"] == "csrf_failed"
        assert identified_at_rest == (auth.status_code == 200), (headers, rest.text, auth.text)
        if rest.status_code == 502:
            assert auth.json()["code"] == "missing_token"
        elif not identified_at_rest:
            assert rest.json() == auth.json(), (headers, rest.text, auth.text)


def test_errors_carry_the_documented_shape() -> None:
    for error in (DuplicateCookie("x"), DuplicateAuthorization("x")):
        assert isinstance(error, GatewayError)
        assert error.status == 400
