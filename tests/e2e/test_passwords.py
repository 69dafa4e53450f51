"""A password reset or set-password ends every session: PostgREST sees the old tokens refused."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import PASSWORD, Served, gateway, ok
from tests.e2e.test_proxy import CHANGE_DEADLINE, bearer, sign_in
from tests.support.postgrest import PostgREST
from tests.support.server import run_gateway
from tests.support.smtp import Inbox, smtp_server
from tests.support.waiting import wait_for

NEW_PASSWORD = "a brand new passphrase"
LINK = re.compile(r"https://app\.example\.com/reset-password\?token=(pgw_lt_[\w-]{43})")


@pytest.fixture
def mailing_proxy(
    served: Served, postgrest: PostgREST, tmp_path: Path
) -> Iterator[tuple[str, Inbox]]:
    """A gateway process in front of PostgREST, sending its mail to a real SMTP server."""
    with smtp_server() as (port, inbox):
        env = {
            **served.env,
            "GATEWAY_UPSTREAM_URL": postgrest.url,
            "GATEWAY_AUTH_RATE_LIMIT": "100000",
            "GATEWAY_SMTP_URL": f"smtp+insecure://127.0.0.1:{port}",
            "GATEWAY_MAIL_FROM": "accounts@example.com",
            "GATEWAY_LINK_BASE_URL": "https://app.example.com",
        }
        with run_gateway(env, cwd=tmp_path) as base_url:
            yield base_url, inbox


def new_member(served: Served) -> str:
    """A user of their own: the module's accounts keep their passwords for the other tests."""
    email = f"reset-{secrets.token_hex(4)}@example.com"
    ok(
        gateway(
            served.env,
            "users",
            "create",
            email,
            "--password-stdin",
            "--org",
            str(served.acme),
            stdin=PASSWORD,
        )
    )
    return email


def projects_status(base: str, answer: dict[str, object]) -> int:
    return httpx.get(f"{base}/rest/projects", headers=bearer(answer)).status_code


def test_a_reset_refuses_earlier_tokens_at_the_proxy_within_a_second(
    mailing_proxy: tuple[str, Inbox], served: Served
) -> None:
    base, inbox = mailing_proxy
    email = new_member(served)
    earlier = sign_in(base, email)
    assert projects_status(base, earlier) == 200

    assert httpx.post(f"{base}/auth/password/forgot", json={"email": email}).status_code == 202
    wait_for(lambda: bool(inbox.messages), 10, "the reset mail")
    text = inbox.messages[-1].get_body(preferencelist=("plain",))
    assert text is not None
    (token,) = LINK.findall(text.get_content())
    reset = httpx.post(
        f"{base}/auth/password/reset", json={"token": token, "password": NEW_PASSWORD}
    )
    assert reset.status_code == 204, reset.text

    wait_for(lambda: projects_status(base, earlier) == 401, CHANGE_DEADLINE, "a 401 after reset")
    refused = httpx.get(f"{base}/rest/projects", headers=bearer(earlier))
    assert refused.json()["code"] == "session_revoked"
    old = httpx.post(f"{base}/auth/login", json={"email": email, "password": PASSWORD})
    assert old.status_code == 401
    assert projects_status(base, sign_in_with(base, email, NEW_PASSWORD)) == 200


def test_set_password_refuses_earlier_tokens_at_the_proxy_within_a_second(
    mailing_proxy: tuple[str, Inbox], served: Served
) -> None:
    base, _ = mailing_proxy
    email = new_member(served)
    earlier = sign_in(base, email)
    assert projects_status(base, earlier) == 200

    ok(gateway(served.env, "users", "set-password", email, "--password-stdin", stdin=NEW_PASSWORD))

    wait_for(lambda: projects_status(base, earlier) == 401, CHANGE_DEADLINE, "a 401 after it")


def sign_in_with(base: str, email: str, password: str) -> dict[str, object]:
    response = httpx.post(f"{base}/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    answer: dict[str, object] = response.json()
    return answer
