"""Invitations over HTTP with a real SMTP server: send, list, withdraw, accept (new or known)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import update

from gateway.settings import Settings
from gateway.store import LinkToken, utcnow
from tests.integration.conftest import PASSWORD, Accounts, Client, bearer, login
from tests.integration.test_organizations import store_of
from tests.support.in_process import GatewayClient
from tests.support.smtp import Inbox, smtp_server

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def inbox() -> Iterator[tuple[int, Inbox]]:
    with smtp_server() as served:
        yield served


@pytest.fixture
async def mail_client(
    auth_settings: Settings, accounts: Accounts, inbox: tuple[int, Inbox]
) -> AsyncIterator[Client]:
    port, _ = inbox
    settings = auth_settings.model_copy(
        update={
            "smtp_url": SecretStr(f"smtp+insecure://127.0.0.1:{port}"),
            "mail_from": "accounts@example.com",
            "link_base_url": "https://app.example.com",
            "signup": "invite",
        }
    )
    async with GatewayClient(settings) as test_client:
        yield test_client


def last_token(inbox: Inbox) -> str:
    body = inbox.messages[-1].get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(r"accept-invitation\?token=(pgw_lt_[A-Za-z0-9_-]{43})", body.get_content())
    assert found is not None
    return found.group(1)


async def invite(
    client: Client, organization_id: int, email: str, role: str = "org_client"
) -> dict[str, Any]:
    ada = (await login(client))["access_token"]
    answer = await client.post(
        f"/auth/organizations/{organization_id}/invitations",
        json={"email": email, "role": role},
        headers=bearer(ada),
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def test_an_invitation_is_mailed_listed_and_withdrawn(
    mail_client: Client, accounts: Accounts, inbox: tuple[int, Inbox]
) -> None:
    _, received = inbox
    made = await invite(mail_client, accounts.acme, "New@Example.com", "org_admin")
    assert set(made) == {"invitation_id", "email", "role", "expires_at"}
    assert made["role"] == "org_admin"
    token = last_token(received)
    assert token not in str(made)
    assert received.envelopes[-1][1] == ["New@example.com"]
    text = received.messages[-1].get_body(preferencelist=("plain",))
    assert text is not None
    assert "Acme" in text.get_content()

    ada = (await login(mail_client))["access_token"]
    url = f"/auth/organizations/{accounts.acme}/invitations"
    listed = (await mail_client.get(url, headers=bearer(ada))).json()["invitations"]
    assert [i["invitation_id"] for i in listed] == [made["invitation_id"]]

    gone = await mail_client.delete(f"{url}/{made['invitation_id']}", headers=bearer(ada))
    assert gone.status_code == 204
    assert (await mail_client.get(url, headers=bearer(ada))).json()["invitations"] == []
    again = await mail_client.delete(f"{url}/{made['invitation_id']}", headers=bearer(ada))
    assert again.status_code == 404
    refused = await mail_client.post(
        "/auth/invitations/accept", json={"token": token, "password": NEW_PASSWORD}
    )
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_link_token"


async def test_only_an_org_admin_invites(mail_client: Client, accounts: Accounts) -> None:
    bob = (await login(mail_client, "bob@example.com"))["access_token"]
    ada = (await login(mail_client))["access_token"]
    for token, organization_id in ((bob, accounts.acme), (ada, accounts.globex)):
        refused = await mail_client.post(
            f"/auth/organizations/{organization_id}/invitations",
            json={"email": "x@example.com", "role": "org_client"},
            headers=bearer(token),
        )
        assert refused.status_code == 403
        assert refused.json()["code"] == "not_org_admin"
    member = await mail_client.post(
        f"/auth/organizations/{accounts.acme}/invitations",
        json={"email": "ada@example.com", "role": "org_client"},
        headers=bearer(ada),
    )
    assert member.status_code == 409


async def test_a_new_user_accepts_creates_a_verified_account_and_signs_in_to_the_organization(
    mail_client: Client, accounts: Accounts, inbox: tuple[int, Inbox]
) -> None:
    await invite(mail_client, accounts.acme, "newcomer@example.com")
    token = last_token(inbox[1])
    answer = await mail_client.post(
        "/auth/invitations/accept", json={"token": token, "password": NEW_PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["organization"] == {"org_name": "Acme", "organization_id": accounts.acme}
    assert body["user"]["role"] == "org_client"
    me = await mail_client.get("/auth/me", headers=bearer(body["access_token"]))
    assert me.json()["organization"]["organization_id"] == accounts.acme
    # The account signs in with the password it chose; the link is spent.
    await login(mail_client, "newcomer@example.com", password=NEW_PASSWORD)
    used = await mail_client.post(
        "/auth/invitations/accept", json={"token": token, "password": NEW_PASSWORD}
    )
    assert used.status_code == 400
    assert used.json()["code"] == "invalid_link_token"


async def test_an_existing_user_accepts_only_with_their_password_and_a_wrong_one_spends_the_link(
    mail_client: Client, accounts: Accounts, inbox: tuple[int, Inbox]
) -> None:
    await invite(mail_client, accounts.acme, "bob@example.com", "org_admin")
    token = last_token(inbox[1])
    wrong = await mail_client.post(
        "/auth/invitations/accept", json={"token": token, "password": "not bobs password"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_credentials"
    spent = await mail_client.post(
        "/auth/invitations/accept", json={"token": token, "password": PASSWORD}
    )
    assert spent.status_code == 400

    await invite(mail_client, accounts.acme, "bob@example.com", "org_admin")
    accepted = await mail_client.post(
        "/auth/invitations/accept", json={"token": last_token(inbox[1]), "password": PASSWORD}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["user"]["role"] == "org_admin"
    assert accepted.json()["organization"]["organization_id"] == accounts.acme


async def test_acceptance_answers_alike_for_known_and_unknown_addresses(
    mail_client: Client, accounts: Accounts, inbox: tuple[int, Inbox]
) -> None:
    """Same status and body keys for a known and a new address; no password: one answer."""
    await invite(mail_client, accounts.acme, "bob@example.com")
    known = last_token(inbox[1])
    await invite(mail_client, accounts.acme, "stranger@example.com")
    unknown = last_token(inbox[1])
    for token in (known, unknown):
        missing = await mail_client.post("/auth/invitations/accept", json={"token": token})
        assert missing.status_code == 400
        assert missing.json()["code"] == "password_required"
    known_answer = await mail_client.post(
        "/auth/invitations/accept", json={"token": known, "password": PASSWORD}
    )
    unknown_answer = await mail_client.post(
        "/auth/invitations/accept", json={"token": unknown, "password": NEW_PASSWORD}
    )
    assert known_answer.status_code == unknown_answer.status_code == 200
    assert set(known_answer.json()) == set(unknown_answer.json())
    assert set(known_answer.json()["user"]) == set(unknown_answer.json()["user"])


async def test_an_expired_invitation_is_refused(
    mail_client: Client, accounts: Accounts, inbox: tuple[int, Inbox]
) -> None:
    await invite(mail_client, accounts.acme, "late@example.com")
    token = last_token(inbox[1])
    async with store_of(mail_client) as db:
        await db.execute(update(LinkToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    refused = await mail_client.post(
        "/auth/invitations/accept", json={"token": token, "password": NEW_PASSWORD}
    )
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_link_token"
    ada = (await login(mail_client))["access_token"]
    listed = await mail_client.get(
        f"/auth/organizations/{accounts.acme}/invitations", headers=bearer(ada)
    )
    assert listed.json()["invitations"] == []


async def test_a_closed_gateway_creates_no_account_from_an_invitation(
    mail_client: Client, accounts: Accounts, inbox: tuple[int, Inbox]
) -> None:
    from tests.integration.conftest import runtime_of

    await invite(mail_client, accounts.acme, "someone@example.com")
    runtime = runtime_of(mail_client)
    runtime.settings = runtime.settings.model_copy(update={"signup": "closed"})
    refused = await mail_client.post(
        "/auth/invitations/accept",
        json={"token": last_token(inbox[1]), "password": NEW_PASSWORD},
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "signup_closed"
