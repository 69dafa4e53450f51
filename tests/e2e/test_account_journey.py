"""Issue 13 end to end: a user base lives through HTTP alone, seen by the real PostgREST."""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import PASSWORD, Served, sql
from tests.e2e.test_proxy import CHANGE_DEADLINE
from tests.support.postgrest import PostgREST
from tests.support.server import run_gateway
from tests.support.smtp import Inbox, smtp_server
from tests.support.waiting import wait_for

LINK_BASE = "https://app.example.com"
MAIL_DEADLINE = 10.0  # some mails leave after the answer (the outbox): wait, never sleep
FOUNDER = "founder@example.com"
FOUNDER_PASSWORD = "a founder's first passphrase"
FOUNDER_NEW_PASSWORD = "the founder's second passphrase"
COLLEAGUE = "colleague@example.com"
COLLEAGUE_PASSWORD = "a colleague's own passphrase"


@pytest.fixture
def open_gateway(
    served: Served, postgrest: PostgREST, tmp_path: Path
) -> Iterator[tuple[str, Inbox]]:
    """``gateway serve`` with open sign-up and verified addresses required, mailing a real
    SMTP server, in front of the real PostgREST."""
    with smtp_server() as (port, inbox):
        env = {
            **served.env,
            "GATEWAY_UPSTREAM_URL": postgrest.url,
            "GATEWAY_AUTH_RATE_LIMIT": "100000",
            "GATEWAY_SIGNUP": "open",
            "GATEWAY_REQUIRE_VERIFIED_EMAIL": "true",
            "GATEWAY_SMTP_URL": f"smtp+insecure://127.0.0.1:{port}",
            "GATEWAY_MAIL_FROM": "accounts@example.com",
            "GATEWAY_LINK_BASE_URL": LINK_BASE,
        }
        with run_gateway(env, cwd=tmp_path) as base_url:
            yield base_url, inbox


# --- helpers: mail, HTTP -----------------------------------------------------------------


def mails_to(inbox: Inbox, address: str) -> list[EmailMessage]:
    return [mail for mail in inbox.messages if mail["To"] == address]


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    content: str = body.get_content()
    return content


def link_tokens(inbox: Inbox, address: str, page: str) -> list[str]:
    """The tokens of the ``page`` links mailed to ``address``, oldest first."""
    link = re.compile(re.escape(f"{LINK_BASE}/{page}?token=") + r"(pgw_lt_[\w-]{43})")
    return [token for mail in mails_to(inbox, address) for token in link.findall(text_of(mail))]


def next_link_token(inbox: Inbox, address: str, page: str, seen: int) -> str:
    """The token of the first ``page`` link mailed to ``address`` after the ``seen`` earlier."""
    wait_for(
        lambda: len(link_tokens(inbox, address, page)) > seen,
        MAIL_DEADLINE,
        f"a {page} mail to {address}",
    )
    return link_tokens(inbox, address, page)[seen]


def bearer(answer: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {answer['access_token']}"}


def sign_in(
    base: str, email: str, password: str, organization_id: int | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"email": email, "password": password}
    if organization_id is not None:
        body["organization_id"] = organization_id
    return httpx.post(f"{base}/auth/login", json=body)


def signed_in(base: str, email: str, password: str, organization_id: int) -> dict[str, Any]:
    response = sign_in(base, email, password, organization_id)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer["organization"]["organization_id"] == organization_id
    return answer


def projects(base: str, answer: dict[str, Any]) -> httpx.Response:
    return httpx.get(f"{base}/rest/projects?select=name", headers=bearer(answer))


def refused_at_rest_within_a_second(base: str, answer: dict[str, Any], what: str) -> None:
    waited = wait_for(lambda: projects(base, answer).status_code == 401, CHANGE_DEADLINE, what)
    assert waited < CHANGE_DEADLINE
    assert projects(base, answer).json()["code"] == "session_revoked"


def member_roles(base: str, admin: dict[str, Any], organization_id: int) -> dict[str, str]:
    listed = httpx.get(
        f"{base}/auth/organizations/{organization_id}/members", headers=bearer(admin)
    )
    assert listed.status_code == 200, listed.text
    return {member["email"]: member["role"] for member in listed.json()["members"]}


# --- the journey --------------------------------------------------------------------------


def test_a_founder_signs_up_builds_a_team_and_recovers_the_account(
    open_gateway: tuple[str, Inbox], served: Served
) -> None:
    base, inbox = open_gateway

    # Open sign-up; the account is unusable until the mailed link proves the address.
    signup = httpx.post(
        f"{base}/auth/signup", json={"email": FOUNDER, "password": FOUNDER_PASSWORD}
    )
    assert signup.status_code == 202, signup.text
    verify_token = next_link_token(inbox, FOUNDER, "verify-email", seen=0)
    unverified = sign_in(base, FOUNDER, FOUNDER_PASSWORD)
    assert unverified.status_code == 403
    assert unverified.json()["code"] == "email_not_verified"
    verified = httpx.post(f"{base}/auth/verify-email", json={"token": verify_token})
    assert verified.status_code == 204, verified.text
    again = httpx.post(f"{base}/auth/verify-email", json={"token": verify_token})
    assert again.status_code == 400  # a link works once
    assert again.json()["code"] == "invalid_link_token"

    # Sign in, create an organization; a token for it reads only its rows at /rest.
    first = sign_in(base, FOUNDER, FOUNDER_PASSWORD)
    assert first.status_code == 200, first.text
    first_session = first.json()
    created = httpx.post(
        f"{base}/auth/organizations", json={"name": "Founders"}, headers=bearer(first_session)
    )
    assert created.status_code == 201, created.text
    org = created.json()["organization_id"]
    mine = httpx.get(f"{base}/auth/organizations", headers=bearer(first_session)).json()
    assert mine == {
        "organizations": [{"organization_id": org, "org_name": "Founders", "role": "org_admin"}]
    }
    admin = signed_in(base, FOUNDER, FOUNDER_PASSWORD, org)
    assert projects(base, admin).json() == []  # none of Acme's or Globex's rows
    row = httpx.post(
        f"{base}/rest/projects",
        json={"organization_id": org, "name": "founders' plan"},
        headers=bearer(admin),
    )
    assert row.status_code == 201, row.text  # the example's RLS: an org_admin writes
    assert projects(base, admin).json() == [{"name": "founders' plan"}]

    # Invite a second person, who has no account: accepting makes one with their password.
    invited = httpx.post(
        f"{base}/auth/organizations/{org}/invitations",
        json={"email": COLLEAGUE, "role": "org_admin"},
        headers=bearer(admin),
    )
    assert invited.status_code == 201, invited.text
    invitation_token = next_link_token(inbox, COLLEAGUE, "accept-invitation", seen=0)
    accepted = httpx.post(
        f"{base}/auth/invitations/accept",
        json={"token": invitation_token, "password": COLLEAGUE_PASSWORD},
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["organization"]["organization_id"] == org
    colleague_id = accepted.json()["user"]["user_id"]
    colleague = signed_in(base, COLLEAGUE, COLLEAGUE_PASSWORD, org)  # the link verified them
    assert projects(base, colleague).json() == [{"name": "founders' plan"}]
    assert member_roles(base, admin, org) == {FOUNDER: "org_admin", COLLEAGUE: "org_admin"}

    # Demotion ends their sessions there; as an org_client they sign in again and read.
    demoted = httpx.patch(
        f"{base}/auth/organizations/{org}/members/{colleague_id}",
        json={"role": "org_client"},
        headers=bearer(admin),
    )
    assert demoted.status_code == 200, demoted.text
    refused_at_rest_within_a_second(base, colleague, "a 401 after demotion")
    client = signed_in(base, COLLEAGUE, COLLEAGUE_PASSWORD, org)
    assert client["user"]["role"] == "org_client"
    assert projects(base, client).json() == [{"name": "founders' plan"}]

    # Removal: their token is refused at /rest within a second, and they cannot come back.
    removed = httpx.delete(
        f"{base}/auth/organizations/{org}/members/{colleague_id}", headers=bearer(admin)
    )
    assert removed.status_code == 204, removed.text
    refused_at_rest_within_a_second(base, client, "a 401 after removal")
    outside = sign_in(base, COLLEAGUE, COLLEAGUE_PASSWORD, org)
    assert outside.status_code == 403
    assert outside.json()["code"] == "not_a_member"
    assert member_roles(base, admin, org) == {FOUNDER: "org_admin"}
    assert projects(base, admin).status_code == 200  # the admin's own session goes on

    # The founder resets their password by mail: every earlier session of theirs ends.
    forgot = httpx.post(f"{base}/auth/password/forgot", json={"email": FOUNDER})
    assert forgot.status_code == 202, forgot.text
    reset_token = next_link_token(inbox, FOUNDER, "reset-password", seen=0)
    reset = httpx.post(
        f"{base}/auth/password/reset",
        json={"token": reset_token, "password": FOUNDER_NEW_PASSWORD},
    )
    assert reset.status_code == 204, reset.text
    for earlier in (first_session, admin):
        me = httpx.get(f"{base}/auth/me", headers=bearer(earlier))
        assert me.status_code == 401, me.text
        assert me.json()["code"] == "session_revoked"
    refused_at_rest_within_a_second(base, admin, "a 401 after the reset")
    assert sign_in(base, FOUNDER, FOUNDER_PASSWORD, org).status_code == 401
    recovered = signed_in(base, FOUNDER, FOUNDER_NEW_PASSWORD, org)
    assert projects(base, recovered).json() == [{"name": "founders' plan"}]

    # Read only to assert: each step of the journey is in the audit trail.
    events = {
        row["type"]
        for row in sql(
            served.url,
            "SELECT type FROM gateway.auth_events WHERE user_id IN "
            "(SELECT id FROM gateway.users WHERE email IN ($1, $2))",
            FOUNDER,
            COLLEAGUE,
        )
    }
    assert {
        "user_created",
        "email_verified",
        "organization_created",
        "invitation_created",
        "invitation_accepted",
        "membership_role_changed",
        "membership_removed",
        "password_reset_requested",
        "password_reset",
    } <= events


# --- enumeration --------------------------------------------------------------------------


def without_account_specifics(answer: dict[str, Any]) -> dict[str, Any]:
    """A token response with what must differ between two accounts (ids, address, the tokens
    themselves, a clock second) replaced by its type."""
    user = {**answer["user"], "user_id": int, "email": str}
    return {
        **answer,
        "access_token": str,
        "refresh_token": str,
        "expires_at": int,
        "user": user,
    }


def test_sign_up_forgot_and_acceptance_answer_a_known_and_an_unknown_address_alike(
    open_gateway: tuple[str, Inbox], served: Served
) -> None:
    base, inbox = open_gateway
    known, unknown = "ada@example.com", "nobody-yet@example.com"

    signups = [
        httpx.post(f"{base}/auth/signup", json={"email": email, "password": PASSWORD})
        for email in (known, unknown)
    ]
    forgots = [
        httpx.post(f"{base}/auth/password/forgot", json={"email": email})
        for email in ("carl@example.com", "never-signed-up@example.com")
    ]

    # Eve, Globex's admin, invites an address with an account and one without.
    eve = signed_in(base, "eve@example.com", PASSWORD, served.globex)
    tokens = []
    for email in (known, "stranger@example.com"):
        invited = httpx.post(
            f"{base}/auth/organizations/{served.globex}/invitations",
            json={"email": email, "role": "org_client"},
            headers=bearer(eve),
        )
        assert invited.status_code == 201, invited.text
        tokens.append(next_link_token(inbox, email, "accept-invitation", seen=0))
    no_password = [
        httpx.post(f"{base}/auth/invitations/accept", json={"token": token}) for token in tokens
    ]
    accepted = [
        httpx.post(f"{base}/auth/invitations/accept", json={"token": token, "password": password})
        for token, password in zip(tokens, (PASSWORD, COLLEAGUE_PASSWORD), strict=True)
    ]

    for known_answer, unknown_answer in (signups, forgots, no_password):
        assert known_answer.status_code == unknown_answer.status_code
        assert known_answer.content == unknown_answer.content
        assert known_answer.headers["content-type"] == unknown_answer.headers["content-type"]
    assert [answer.status_code for answer in (signups[0], forgots[0], no_password[0])] == [
        202,
        202,
        400,
    ]
    assert no_password[0].json()["code"] == "password_required"
    assert accepted[0].status_code == accepted[1].status_code == 200
    assert without_account_specifics(accepted[0].json()) == without_account_specifics(
        accepted[1].json()
    )
