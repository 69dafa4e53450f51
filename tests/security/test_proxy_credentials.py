"""Answers to credentialed requests at the mount, with real tokens from the real app
(in-process Litestar, as tests/integration runs it) and a recording upstream."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from gateway.settings import Settings
from tests.integration.conftest import Client, bearer, login
from tests.support.upstream import RecordingUpstream

pytestmark = pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)

PUBLIC = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: public, max-age=300\r\n"
    b"Vary: Accept-Encoding\r\nContent-Length: 2\r\n\r\n[]"
)


@pytest.fixture
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream(reply=PUBLIC).start()
    yield server
    server.close()


@pytest.fixture
def auth_settings(
    migrated_store: Settings, tmp_path: object, upstream: RecordingUpstream
) -> Settings:
    return migrated_store.model_copy(
        update={
            "keys_dir": f"{tmp_path}/keys",
            "cookie_secure": False,
            "auth_rate_limit": 100_000,
            "upstream_url": upstream.url,
        }
    )


async def test_an_answer_to_a_bearer_request_is_private_and_varies_on_credentials(
    client: Client,
) -> None:
    token = (await login(client))["access_token"]

    response = await client.get("/rest/projects", headers=bearer(token))

    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, max-age=300"
    assert response.headers.get_list("vary") == ["Accept-Encoding, Cookie, Authorization"]


async def test_an_answer_to_a_cookie_request_is_private_although_the_cookie_never_reaches_postgrest(
    client: Client, upstream: RecordingUpstream
) -> None:
    """The access cookie becomes Authorization only upstream: a shared cache in front of the
    gateway sees a request without Authorization, so the answer itself must say private."""
    await login(client, cookie=True)
    before = len(upstream.heads)

    response = await client.get("/rest/projects")

    assert response.status_code == 200
    assert b"authorization: bearer " in upstream.heads[before].lower()
    assert response.headers["cache-control"] == "private, max-age=300"


async def test_the_litestar_mount_logs_the_path_the_client_sent(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.request"):
        await client.get("/rest/auth/login")

    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.request"]
    assert any(" path=/rest/auth/login status=200 " in line for line in lines), lines


async def test_the_litestar_mount_refuses_a_path_it_does_not_own(
    client: Client, upstream: RecordingUpstream
) -> None:
    """Litestar routes '/restx' and '/r%65st/x' (decoded '/rest/x') to the mount; the mount
    decides on the raw path and answers 404 without asking PostgREST."""
    before = len(upstream.heads)

    answers = [await client.get(path) for path in ("/restx", "/r%65st/x", "/rest%2Fx")]

    assert [a.status_code for a in answers] == [404, 404, 404]
    assert upstream.heads[before:] == []


async def test_a_raw_path_that_carries_the_query_forwards_it_once_and_never_logs_it(
    client: Client, upstream: RecordingUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    """Litestar's test client (like some servers) puts the query into raw_path too: the path
    ends at the first '?', the query comes from query_string alone."""
    before = len(upstream.heads)

    with caplog.at_level(logging.INFO, logger="gateway.request"):
        response = await client.get("/rest/projects?select=id&access_token=secret-token")

    assert response.status_code == 200
    assert upstream.request_lines(before) == [
        b"GET /projects?select=id&access_token=secret-token HTTP/1.1"
    ]
    assert "secret-token" not in caplog.text
