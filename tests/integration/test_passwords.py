"""Password forgot, reset and change over HTTP, and `gateway users set-password`, with real mail."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.accounts import issue_link_token
from gateway.settings import Settings
from gateway.store import LinkToken, User, make_engine, make_sessionmaker, utcnow
from gateway.store.models import AuthEvent
from tests.integration.conftest import PASSWORD, Accounts, Client, bearer, login, runtime_of
from tests.integration.test_auth_cookies import cookie_header, cookie_login
from tests.support.cli import run_cli
from tests.support.in_process import GatewayClient
from tests.support.smtp import Inbox, free_port, smtp_server

FORGOT, RESET, CHANGE = "/auth/password/forgot", "/auth/password/reset", "/auth/password/change"
NEW_PASSWORD = "a brand new passphrase"
LINK = re.compile(r"https://app\.example\.com/account/reset-password\?token=(pgw_lt_[\w-]{43})")
REFUSED = {
    "code": "invalid_link_token",
    "message": "This link is invalid or has expired. Ask for a new one.",
}


def with_mail(settings: Settings, port: int) -> Settings:
    return settings.model_copy(
        update={
            "smtp_url": SecretStr(f"smtp+insecure://127.0.0.1:{port}"),
            "mail_from": "Accounts <accounts@example.com>",
            "link_base_url": "https://app.example.com/account",
            "smtp_timeout": 5.0,
        }
    )


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    with smtp_server() as served:
        yield served


@pytest.fixture
def inbox(smtp: tuple[int, Inbox]) -> Inbox:
    return smtp[1]


@pytest.fixture
async def mail_client(
    auth_settings: Settings, accounts: Accounts, smtp: tuple[int, Inbox]
) -> AsyncIterator[Client]:
    async with GatewayClient(with_mail(auth_settings, smtp[0])) as test_client:
        yield test_client


async def forgot(client: Client, email: str) -> httpx.Response:
    response = await client.post(FORGOT, json={"email": email})
    # The mail leaves after the answer; wait for it (in the application's own event loop, which
    # the test client runs in a thread) before reading the inbox.
    outbox = runtime_of(client).outbox

    def drain() -> None:
        client.blocking_portal.call(outbox.drain)

    await asyncio.to_thread(drain)
    return response


@asynccontextmanager
async def store_of(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The store as a test reads it: an engine of its own, in the test's event loop."""
    engine = make_engine(settings)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


def tokens_mailed_to(inbox: Inbox, email: str) -> list[str]:
    found = []
    for message in inbox.messages:
        if message["To"] == email:
            text = message.get_body(preferencelist=("plain",))
            assert text is not None
            found.extend(LINK.findall(text.get_content()))
    return found


async def reset_token(client: Client, inbox: Inbox, email: str = "ada@example.com") -> str:
    assert (await forgot(client, email)).status_code == 202
    return tokens_mailed_to(inbox, email)[-1]


async def sign_in_status(client: Client, password: str, email: str = "ada@example.com") -> int:
    response = await client.post("/auth/login", json={"email": email, "password": password})
    return response.status_code


# Forgot.


async def test_forgot_answers_every_address_alike_and_mails_only_an_account(
    mail_client: Client, inbox: Inbox
) -> None:
    known = await forgot(mail_client, "Ada@Example.com")
    unknown = await forgot(mail_client, "nobody@example.com")

    assert known.status_code == unknown.status_code == 202
    assert known.content == unknown.content
    assert known.headers["content-type"] == unknown.headers["content-type"]
    assert "message" in known.json()
    assert [envelope[1] for envelope in inbox.envelopes] == [["ada@example.com"]]
    (mail,) = inbox.messages
    assert mail["Subject"] == "Reset your password"
    assert len(tokens_mailed_to(inbox, "ada@example.com")) == 1


async def test_forgot_without_a_mail_server_is_503_for_every_address(
    client: Client, inbox: Inbox
) -> None:
    known = await client.post(FORGOT, json={"email": "ada@example.com"})
    unknown = await client.post(FORGOT, json={"email": "nobody@example.com"})

    assert known.status_code == unknown.status_code == 503
    assert known.json()["code"] == "mail_not_configured"
    assert known.content == unknown.content


async def test_a_new_reset_link_revokes_the_older_one(mail_client: Client, inbox: Inbox) -> None:
    first = await reset_token(mail_client, inbox)
    second = await reset_token(mail_client, inbox)

    stale = await mail_client.post(RESET, json={"token": first, "password": NEW_PASSWORD})
    fresh = await mail_client.post(RESET, json={"token": second, "password": NEW_PASSWORD})

    assert (stale.status_code, stale.json()) == (400, REFUSED)
    assert fresh.status_code == 204


async def test_reset_mails_to_one_account_are_capped_without_a_different_answer(
    mail_client: Client, inbox: Inbox
) -> None:
    answers = [await forgot(mail_client, "bob@example.com") for _ in range(7)]

    assert {answer.status_code for answer in answers} == {202}
    assert len({answer.content for answer in answers}) == 1
    assert len(tokens_mailed_to(inbox, "bob@example.com")) == 5


async def test_a_failed_delivery_is_logged_without_the_link(
    auth_settings: Settings, accounts: Accounts, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dead_port = free_port()  # nothing listens there
    async with GatewayClient(with_mail(auth_settings, dead_port)) as test_client:
        answer = await forgot(test_client, "ada@example.com")

    assert answer.status_code == 202
    assert "mail password_reset to 127.0.0.1" in caplog.text
    assert "pgw_lt_" not in caplog.text


# Reset.


async def test_the_link_sets_a_new_password_once(
    mail_client: Client, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = await reset_token(mail_client, inbox)

    done = await mail_client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
    again = await mail_client.post(RESET, json={"token": token, "password": "yet another one!"})

    assert done.status_code == 204
    assert done.content == b""
    assert (again.status_code, again.json()) == (400, REFUSED)
    assert await sign_in_status(mail_client, PASSWORD) == 401
    assert await sign_in_status(mail_client, NEW_PASSWORD) == 200
    assert token not in caplog.text


async def test_reset_ends_every_session_of_the_user(
    mail_client: Client, inbox: Inbox, accounts: Accounts
) -> None:
    phone = await login(mail_client)
    laptop = await login(mail_client, organization_id=accounts.globex)
    bobs = await login(mail_client, "bob@example.com")
    token = await reset_token(mail_client, inbox)

    assert (
        await mail_client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
    ).status_code == 204

    for ended in (phone, laptop):
        me = await mail_client.get("/auth/me", headers=bearer(ended["access_token"]))
        assert (me.status_code, me.json()["code"]) == (401, "session_revoked")
        refreshed = await mail_client.post(
            "/auth/refresh", json={"refresh_token": ended["refresh_token"]}
        )
        assert refreshed.status_code == 401
    assert (await mail_client.get("/auth/me", headers=bearer(bobs["access_token"]))).is_success


async def test_reset_marks_the_address_verified_and_is_audited(
    mail_client: Client, inbox: Inbox, accounts: Accounts, auth_settings: Settings
) -> None:
    token = await reset_token(mail_client, inbox)
    await mail_client.post(RESET, json={"token": token, "password": NEW_PASSWORD})

    async with store_of(auth_settings) as store, store() as db:
        ada = await db.get(User, accounts.ada)
        events = (
            await db.scalars(select(AuthEvent.type).where(AuthEvent.user_id == accounts.ada))
        ).all()
    assert ada is not None
    assert ada.email_verified_at is not None
    assert {"password_reset_requested", "password_reset"} <= set(events)


async def test_a_weak_password_is_refused_and_leaves_the_link_usable(
    mail_client: Client, inbox: Inbox
) -> None:
    token = await reset_token(mail_client, inbox)

    weak = await mail_client.post(RESET, json={"token": token, "password": "short"})
    strong = await mail_client.post(RESET, json={"token": token, "password": NEW_PASSWORD})

    assert (weak.status_code, weak.json()["code"]) == (400, "weak_password")
    assert strong.status_code == 204


async def test_every_bad_token_gets_the_one_refusal(
    mail_client: Client, inbox: Inbox, accounts: Accounts, auth_settings: Settings
) -> None:
    used = await reset_token(mail_client, inbox)
    assert (
        await mail_client.post(RESET, json={"token": used, "password": NEW_PASSWORD})
    ).status_code == 204
    expired = await reset_token(mail_client, inbox)
    async with store_of(auth_settings) as store, store.begin() as db:
        await db.execute(update(LinkToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        other_purpose = await issue_link_token(
            db,
            purpose="verify_email",
            email="ada@example.com",
            ttl=3600,
            now=utcnow(),
            user_id=accounts.ada,
        )
    tokens = {
        "used": used,
        "expired": expired,
        "another purpose": other_purpose,
        "made up": "pgw_lt_" + "A" * 43,
        "malformed": "not-a-token",
    }

    answers = {
        label: await mail_client.post(RESET, json={"token": token, "password": NEW_PASSWORD})
        for label, token in tokens.items()
    }

    refusals = {label: (answer.status_code, answer.json()) for label, answer in answers.items()}
    assert refusals == dict.fromkeys(tokens, (400, REFUSED))


# Change.


async def test_change_needs_the_current_password_and_ends_only_the_other_sessions(
    mail_client: Client, accounts: Accounts
) -> None:
    caller = await login(mail_client)
    other = await login(mail_client, organization_id=accounts.globex)

    wrong = await mail_client.post(
        CHANGE,
        headers=bearer(caller["access_token"]),
        json={"current_password": "not the password", "new_password": NEW_PASSWORD},
    )
    assert (wrong.status_code, wrong.json()["code"]) == (401, "invalid_credentials")
    assert (await mail_client.get("/auth/me", headers=bearer(other["access_token"]))).is_success

    changed = await mail_client.post(
        CHANGE,
        headers=bearer(caller["access_token"]),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert changed.status_code == 204
    ended = await mail_client.get("/auth/me", headers=bearer(other["access_token"]))
    assert (ended.status_code, ended.json()["code"]) == (401, "session_revoked")
    assert (await mail_client.get("/auth/me", headers=bearer(caller["access_token"]))).is_success
    kept = await mail_client.post("/auth/refresh", json={"refresh_token": caller["refresh_token"]})
    assert kept.status_code == 200
    assert await sign_in_status(mail_client, PASSWORD) == 401
    assert await sign_in_status(mail_client, NEW_PASSWORD) == 200


async def test_change_revokes_outstanding_reset_links(mail_client: Client, inbox: Inbox) -> None:
    token = await reset_token(mail_client, inbox)
    caller = await login(mail_client)

    changed = await mail_client.post(
        CHANGE,
        headers=bearer(caller["access_token"]),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    stale = await mail_client.post(RESET, json={"token": token, "password": "the attacker's pw"})

    assert changed.status_code == 204
    assert (stale.status_code, stale.json()) == (400, REFUSED)


async def test_wrong_current_passwords_are_throttled_like_sign_ins(
    client: Client, auth_settings: Settings
) -> None:
    caller = await login(client)
    wrong = {"current_password": "not the password", "new_password": NEW_PASSWORD}
    statuses = [
        (await client.post(CHANGE, headers=bearer(caller["access_token"]), json=wrong)).status_code
        for _ in range(auth_settings.login_max_failures + 1)
    ]
    right = await client.post(
        CHANGE,
        headers=bearer(caller["access_token"]),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )

    assert statuses == [401] * auth_settings.login_max_failures + [429]
    assert right.status_code == 429
    # The lock is the login's: the password is not tried from this address either.
    assert await sign_in_status(client, PASSWORD) == 429


async def test_change_with_the_access_cookie_needs_the_csrf_token(client: Client) -> None:
    session = await cookie_login(client)
    body = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    cookies = cookie_header(gw_access=session.access, gw_csrf=session.csrf)

    without = await client.post(CHANGE, headers=cookies, json=body)
    with_csrf = await client.post(
        CHANGE, headers={**cookies, "X-CSRF-Token": session.csrf}, json=body
    )

    assert (without.status_code, without.json()["code"]) == (403, "csrf_failed")
    assert with_csrf.status_code == 204


async def test_change_refuses_a_weak_new_password_before_checking_anything(
    client: Client,
) -> None:
    caller = await login(client)
    weak = await client.post(
        CHANGE,
        headers=bearer(caller["access_token"]),
        json={"current_password": PASSWORD, "new_password": "short"},
    )
    assert (weak.status_code, weak.json()["code"]) == (400, "weak_password")
    assert await sign_in_status(client, PASSWORD) == 200


async def test_change_without_a_token_is_401(client: Client) -> None:
    answer = await client.post(
        CHANGE, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert (answer.status_code, answer.json()["code"]) == (401, "missing_token")


# The operator's twin.


async def test_cli_set_password_ends_every_session(
    client: Client, store_env: dict[str, str]
) -> None:
    signed_in = await login(client)

    result = run_cli(
        store_env,
        None,
        "users",
        "set-password",
        "ada@example.com",
        "--password-stdin",
        "--json",
        stdin=NEW_PASSWORD + "\n",
    )

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["email"], document["sessions_ended"]) == ("ada@example.com", 1)
    assert NEW_PASSWORD not in result.stdout + result.stderr
    me = await client.get("/auth/me", headers=bearer(signed_in["access_token"]))
    assert (me.status_code, me.json()["code"]) == (401, "session_revoked")
    assert await sign_in_status(client, PASSWORD) == 401
    assert await sign_in_status(client, NEW_PASSWORD) == 200


async def test_cli_set_password_refuses_a_weak_password_and_an_unknown_user(
    client: Client, store_env: dict[str, str]
) -> None:
    weak = run_cli(
        store_env,
        None,
        "users",
        "set-password",
        "ada@example.com",
        "--password-stdin",
        stdin="short\n",
    )
    unknown = run_cli(
        store_env,
        None,
        "users",
        "set-password",
        "nobody@example.com",
        "--password-stdin",
        stdin=NEW_PASSWORD + "\n",
    )

    assert weak.returncode == unknown.returncode == 1
    assert "at least" in weak.stderr
    assert "no user" in unknown.stderr
    assert await sign_in_status(client, PASSWORD) == 200
