"""Sign-up and email verification over HTTP, with a real SMTP server and a real store."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from gateway.accounts import issue_link_token
from gateway.accounts.passwords import PasswordHashing
from gateway.settings import Settings
from gateway.store import LinkToken, Organization, User, make_engine, make_sessionmaker, utcnow
from tests.conftest import dump_store
from tests.integration.conftest import Accounts, Client, bearer, runtime_of
from tests.support.in_process import GatewayClient
from tests.support.smtp import Inbox, smtp_server

PASSWORD = "a long enough passphrase"
LINK_BASE = "https://app.example.com/account"
TOKEN_IN_LINK = re.compile(r"token=(pgw_lt_[A-Za-z0-9_-]{43})")
ACCEPTED = {
    "message": "Check your inbox: if this address can receive mail, a message with the next "
    "step is on its way to it."
}


@pytest.fixture
def mail_server() -> Iterator[tuple[int, Inbox]]:
    with smtp_server() as served:
        yield served


@pytest.fixture
def inbox(mail_server: tuple[int, Inbox]) -> Inbox:
    return mail_server[1]


def with_mail(settings: Settings, port: int, **overrides: Any) -> Settings:
    return settings.model_copy(
        update={
            "signup": "open",
            "smtp_url": SecretStr(f"smtp+insecure://127.0.0.1:{port}"),
            "mail_from": "accounts@example.com",
            "link_base_url": LINK_BASE,
            **overrides,
        }
    )


@pytest.fixture
def signup_settings(auth_settings: Settings, mail_server: tuple[int, Inbox]) -> Settings:
    return with_mail(auth_settings, mail_server[0], require_verified_email=True)


@pytest.fixture
async def client(signup_settings: Settings, accounts: Accounts) -> AsyncIterator[Client]:
    async with GatewayClient(signup_settings) as test_client:
        yield test_client


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    content: str = body.get_content()
    return content


def link_token_in(mail: EmailMessage) -> str:
    """The token of the mail's verification link (which must be under GATEWAY_LINK_BASE_URL)."""
    text = text_of(mail)
    assert f"{LINK_BASE}/verify-email?token=" in text
    found = TOKEN_IN_LINK.search(text)
    assert found is not None
    return found.group(1)


async def count(settings: Settings, query: Any) -> int:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as db:
            return int(await db.scalar(query) or 0)
    finally:
        await engine.dispose()


def users_with(email: str) -> Any:
    return select(func.count()).select_from(User).where(User.email_normalized == email.lower())


async def sign_up(client: Client, email: str, **body: Any) -> Any:
    return await client.post("/auth/signup", json={"email": email, "password": PASSWORD, **body})


async def sign_in(client: Client, email: str, password: str = PASSWORD) -> Any:
    return await client.post("/auth/login", json={"email": email, "password": password})


class CountingHashing(PasswordHashing):
    """The real argon2 pool, counting the hashes it makes."""

    def __init__(self) -> None:
        super().__init__(workers=1)
        self.hashed = 0

    async def hash(self, password: str) -> str:
        self.hashed += 1
        return await super().hash(password)


async def test_a_sign_up_mails_a_link_that_verifies_the_address_and_then_sign_in_works(
    client: Client, inbox: Inbox
) -> None:
    answer = await sign_up(client, "Grace@Example.com")

    assert answer.status_code == 202
    assert answer.json() == ACCEPTED
    (mail,) = inbox.messages
    assert inbox.envelopes == [("accounts@example.com", ["Grace@example.com"])]
    assert mail["Subject"] == "Confirm your email address"
    token = link_token_in(mail)

    # GATEWAY_REQUIRE_VERIFIED_EMAIL: refused, but said only to the right password.
    wrong = await sign_in(client, "grace@example.com", "not the password")
    early = await sign_in(client, "grace@example.com")
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_credentials"
    assert early.status_code == 403
    assert early.json()["code"] == "email_not_verified"

    verified = await client.post("/auth/verify-email", json={"token": token})
    assert verified.status_code == 204
    signed_in = await sign_in(client, "grace@example.com")
    assert signed_in.status_code == 200, signed_in.text
    assert "email_verified" not in signed_in.json()["user"]
    me = await client.get("/auth/me", headers=bearer(signed_in.json()["access_token"]))
    assert me.json()["user"]["email_verified"] is True
    assert me.json()["user"]["email_verified_at"] is not None


async def test_a_sign_up_with_an_organization_name_makes_the_user_its_org_admin(
    client: Client, inbox: Inbox
) -> None:
    answer = await sign_up(client, "grace@example.com", organization_name="  Analytical  ")
    assert answer.status_code == 202
    await client.post("/auth/verify-email", json={"token": link_token_in(inbox.messages[0])})

    signed_in = (await sign_in(client, "grace@example.com")).json()

    assert signed_in["organization"]["org_name"] == "Analytical"
    assert signed_in["user"]["role"] == "org_admin"


async def test_a_known_email_gets_the_same_answer_after_the_same_hashing_and_its_owner_is_told(
    client: Client, inbox: Inbox, signup_settings: Settings
) -> None:
    hashing = CountingHashing()
    runtime_of(client).passwords = hashing
    first = await sign_up(client, "grace@example.com")
    hashes_for_new, hashing.hashed = hashing.hashed, 0

    again = await sign_up(client, "GRACE@example.com", organization_name="Takeover Inc")

    assert first.status_code == again.status_code == 202
    assert first.content == again.content
    assert hashes_for_new == hashing.hashed == 1
    assert await count(signup_settings, users_with("grace@example.com")) == 1
    assert await count(signup_settings, select(func.count()).select_from(Organization)) == 2
    assert await count(signup_settings, select(func.count()).select_from(LinkToken)) == 1
    new_mail, owner_mail = inbox.messages
    assert owner_mail["To"] == "grace@example.com"
    assert owner_mail["Subject"] != new_mail["Subject"]
    assert "already has one" in text_of(owner_mail)
    assert f"{LINK_BASE}/forgot-password" in text_of(owner_mail)
    assert TOKEN_IN_LINK.search(text_of(owner_mail)) is None


async def test_a_sign_up_for_an_existing_verified_account_changes_nothing_of_it(
    client: Client, inbox: Inbox, signup_settings: Settings
) -> None:
    before = await asyncio.to_thread(dump_store, signup_settings)

    answer = await sign_up(client, "ada@example.com")

    after = await asyncio.to_thread(dump_store, signup_settings)
    assert answer.status_code == 202
    assert answer.json() == ACCEPTED
    # Only the audit trail grows; the account, its password and its links are as they were.
    assert {table: rows for table, rows in after.items() if table != "auth_events"} == {
        table: rows for table, rows in before.items() if table != "auth_events"
    }
    assert [mail["Subject"] for mail in inbox.messages] == [
        "Someone tried to sign up with your email address"
    ]


async def test_two_concurrent_sign_ups_of_one_address_make_one_account_and_one_answer(
    client: Client, inbox: Inbox, signup_settings: Settings
) -> None:
    answers = await asyncio.gather(*(sign_up(client, "grace@example.com") for _ in range(2)))

    assert [answer.status_code for answer in answers] == [202, 202]
    assert answers[0].content == answers[1].content
    assert await count(signup_settings, users_with("grace@example.com")) == 1
    assert sorted(mail["Subject"] for mail in inbox.messages) == [
        "Confirm your email address",
        "Someone tried to sign up with your email address",
    ]


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("closed", "Sign-up is closed on this gateway; ask its operator for an account."),
        (
            "invite",
            "Sign-up is by invitation only: ask an organization's admin to invite you, then "
            "follow the link in the invitation mail.",
        ),
    ],
)
async def test_a_closed_or_invite_only_gateway_refuses_every_sign_up_alike(
    signup_settings: Settings, accounts: Accounts, inbox: Inbox, mode: str, message: str
) -> None:
    settings = signup_settings.model_copy(update={"signup": mode})
    before = await asyncio.to_thread(dump_store, settings)
    async with GatewayClient(settings) as client:
        known = await sign_up(client, "ada@example.com")
        new = await sign_up(client, "grace@example.com", organization_name="Analytical")
        malformed = await client.post("/auth/signup", json={"email": 5})

    for answer in (known, new, malformed):
        assert answer.status_code == 403
        assert answer.json() == {"code": "signup_closed", "message": message}
    assert await asyncio.to_thread(dump_store, settings) == before
    assert inbox.messages == []


async def test_without_a_mail_server_a_sign_up_is_503_and_writes_nothing(
    auth_settings: Settings, accounts: Accounts
) -> None:
    settings = auth_settings.model_copy(update={"signup": "open"})
    before = await asyncio.to_thread(dump_store, settings)
    async with GatewayClient(settings) as client:
        new = await sign_up(client, "grace@example.com", organization_name="Analytical")
        known = await sign_up(client, "ada@example.com")

    for answer in (new, known):
        assert answer.status_code == 503
        assert answer.json()["code"] == "mail_not_configured"
    assert await asyncio.to_thread(dump_store, settings) == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"email": "not an email", "password": PASSWORD}, "invalid_email"),
        ({"email": "grace@example.com", "password": "short"}, "weak_password"),
        ({"email": "grace@example.com", "password": "é" * 600}, "weak_password"),
        (
            {"email": "grace@example.com", "password": PASSWORD, "organization_name": "a\x00b"},
            "invalid_organization_name",
        ),
        (
            {"email": "grace@example.com", "password": PASSWORD, "organization_name": "Acme"},
            "organization_name_taken",
        ),
        ({"email": "grace@example.com", "password": PASSWORD, "admin": True}, "invalid_request"),
    ],
    ids=["email", "short password", "password over 1024 bytes", "org name", "org taken", "extra"],
)
async def test_bad_input_is_refused_before_anything_is_written(
    client: Client, inbox: Inbox, signup_settings: Settings, body: dict[str, Any], code: str
) -> None:
    before = await asyncio.to_thread(dump_store, signup_settings)

    answer = await client.post("/auth/signup", json=body)

    assert 400 <= answer.status_code < 500
    assert answer.json()["code"] == code
    assert await asyncio.to_thread(dump_store, signup_settings) == before
    assert inbox.messages == []


async def test_a_taken_organization_name_is_refused_alike_for_a_known_email(
    client: Client, inbox: Inbox
) -> None:
    new = await sign_up(client, "grace@example.com", organization_name="Acme")
    known = await sign_up(client, "ada@example.com", organization_name="Acme")

    assert new.status_code == known.status_code == 409
    assert new.json() == known.json()
    assert inbox.messages == []


async def issue(settings: Settings, *, purpose: str, user_id: int, age: timedelta) -> str:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine).begin() as db:
            return await issue_link_token(
                db,
                purpose=purpose,
                email="bob@example.com",
                ttl=3600,
                now=utcnow() - age,
                user_id=user_id,
            )
    finally:
        await engine.dispose()


async def test_a_verification_token_works_once_for_its_purpose_until_it_expires(
    client: Client, inbox: Inbox, signup_settings: Settings, accounts: Accounts
) -> None:
    await sign_up(client, "grace@example.com")
    token = link_token_in(inbox.messages[0])
    reset = await issue(
        signup_settings, purpose="password_reset", user_id=accounts.bob, age=timedelta()
    )
    expired = await issue(
        signup_settings, purpose="verify_email", user_id=accounts.bob, age=timedelta(hours=2)
    )

    first = await client.post("/auth/verify-email", json={"token": token})
    refusals = [
        await client.post("/auth/verify-email", json={"token": candidate})
        for candidate in (token, reset, expired, "pgw_lt_" + "A" * 43, "nonsense")
    ]

    assert first.status_code == 204
    for refusal in refusals:
        assert refusal.status_code == 400
        assert refusal.json() == {
            "code": "invalid_link_token",
            "message": "This link is invalid or has expired. Ask for a new one.",
        }
    bob_verified = (
        select(func.count())
        .select_from(User)
        .where(User.id == accounts.bob, User.email_verified_at.is_not(None))
    )
    assert await count(signup_settings, bob_verified) == 0


async def test_a_signed_in_unverified_user_can_ask_for_a_fresh_link_that_replaces_the_old(
    auth_settings: Settings, accounts: Accounts, mail_server: tuple[int, Inbox]
) -> None:
    port, inbox = mail_server
    async with GatewayClient(with_mail(auth_settings, port)) as client:
        await sign_up(client, "grace@example.com")
        access = (await sign_in(client, "grace@example.com")).json()["access_token"]
        me = await client.get("/auth/me", headers=bearer(access))
        assert me.json()["user"]["email_verified"] is False
        assert me.json()["user"]["email_verified_at"] is None

        resent = await client.post("/auth/verify-email/resend", headers=bearer(access))
        old, new = (link_token_in(mail) for mail in inbox.messages)
        stale = await client.post("/auth/verify-email", json={"token": old})
        fresh = await client.post("/auth/verify-email", json={"token": new})
        again = await client.post("/auth/verify-email/resend", headers=bearer(access))
        anonymous = await client.post("/auth/verify-email/resend")

    assert resent.status_code == 202
    assert stale.status_code == 400
    assert fresh.status_code == 204
    assert again.status_code == 409
    assert again.json()["code"] == "email_already_verified"
    assert anonymous.status_code == 401
    assert len(inbox.messages) == 2


async def test_sessions_granted_before_verification_was_required_keep_working(
    auth_settings: Settings, accounts: Accounts, mail_server: tuple[int, Inbox]
) -> None:
    port, _ = mail_server
    async with GatewayClient(with_mail(auth_settings, port)) as client:
        await sign_up(client, "grace@example.com")
        refresh_token = (await sign_in(client, "grace@example.com")).json()["refresh_token"]
    async with GatewayClient(with_mail(auth_settings, port, require_verified_email=True)) as client:
        refreshed = await client.post("/auth/refresh", json={"refresh_token": refresh_token})
        signed_in = await sign_in(client, "grace@example.com")

    assert refreshed.status_code == 200
    assert signed_in.status_code == 403
    assert signed_in.json()["code"] == "email_not_verified"


async def test_sign_up_is_under_the_per_address_limit_of_auth(
    signup_settings: Settings, accounts: Accounts, inbox: Inbox
) -> None:
    async with GatewayClient(signup_settings.model_copy(update={"auth_rate_limit": 2})) as client:
        answers = [await sign_up(client, f"user{n}@example.com") for n in range(3)]

    assert [answer.status_code for answer in answers] == [202, 202, 429]
    assert len(inbox.messages) == 2
