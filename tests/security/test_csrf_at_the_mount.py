"""CSRF at the /rest mount for every unsafe method, with the access cookie as the credential.

tests/e2e/test_proxy.py proves it for POST through real processes, tests/integration/
test_auth_cookies.py for the /auth endpoints; here every method PostgREST writes with. Upstream
is a dead port: a request that passes the check gets 502, one that fails it 403 ``csrf_failed``
before anything is sent upstream.
"""

from __future__ import annotations

import httpx
import pytest

from gateway.settings import Settings
from tests.integration.conftest import Client, login
from tests.security.conftest import with_a_dead_upstream

UNSAFE = ["POST", "PUT", "PATCH", "DELETE"]


@pytest.fixture
def auth_settings(auth_settings: Settings) -> Settings:
    return with_a_dead_upstream(auth_settings)


pytestmark = pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)


async def cookie_login(client: Client) -> str:
    csrf: str = (await login(client, cookie=True))["csrf_token"]
    assert client.cookies.get("gw_access")
    return csrf


def refused(response: httpx.Response) -> bool:
    return response.status_code == 403 and response.json()["code"] == "csrf_failed"


@pytest.mark.parametrize("method", UNSAFE)
async def test_csrf_every_cookie_authenticated_write_needs_the_matching_token(
    client: Client, method: str
) -> None:
    csrf = await cookie_login(client)
    body = {"task": "forged"}

    missing = await client.request(method, "/rest/todos", json=body)
    wrong = [
        await client.request(method, "/rest/todos", headers={"X-CSRF-Token": sent}, json=body)
        for sent in ("wrong", "", " ", csrf[:-1], csrf + "x", csrf.upper())
    ]
    genuine = await client.request(method, "/rest/todos", headers={"X-CSRF-Token": csrf})
    client.cookies.delete("gw_csrf")
    no_cookie_empty_header = await client.request(
        method, "/rest/todos", headers={"X-CSRF-Token": ""}
    )

    assert refused(missing)
    assert all(refused(answer) for answer in wrong)
    assert refused(no_cookie_empty_header)
    # Past the check, the dead upstream answers for itself.
    assert genuine.status_code == 502
    assert genuine.json()["code"] == "upstream_unavailable"


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_csrf_safe_methods_need_no_token(client: Client, method: str) -> None:
    await cookie_login(client)

    response = await client.request(method, "/rest/todos")

    assert response.status_code != 403
