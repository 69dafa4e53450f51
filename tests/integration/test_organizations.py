"""Organizations and their members over HTTP: list, create, rename, roles, removal, leaving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts import PasswordHashing, add_membership, create_user
from gateway.settings import Settings
from gateway.store import AuthEvent, Membership, User, make_engine, make_sessionmaker, utcnow
from tests.integration.conftest import PASSWORD, Accounts, Client, bearer, login, runtime_of
from tests.integration.test_auth_cookies import cookie_header, cookie_login


@asynccontextmanager
async def store_of(client: Client) -> AsyncIterator[AsyncSession]:
    """A transaction on the gateway's store from the test's own event loop (not the app's)."""
    engine = make_engine(runtime_of(client).settings)
    try:
        async with make_sessionmaker(engine).begin() as db:
            yield db
    finally:
        await engine.dispose()


async def add_user(client: Client, email: str, organization_id: int, role: str, *more: int) -> int:
    """A verified user, member of ``organization_id`` as ``role`` (and client of ``more``)."""
    passwords = PasswordHashing(workers=1)
    try:
        async with store_of(client) as db:
            user = await create_user(
                db=db,
                passwords=passwords,
                settings=runtime_of(client).settings,
                email=email,
                password=PASSWORD,
                email_verified=True,
            )
            await add_membership(db=db, user=user, organization_id=organization_id, role=role)
            for other in more:
                await add_membership(db=db, user=user, organization_id=other, role="org_client")
            return user.id
    finally:
        passwords.close()


async def token_of(client: Client, email: str, organization_id: int | None = None) -> str:
    body: dict[str, Any] = {} if organization_id is None else {"organization_id": organization_id}
    return str((await login(client, email, **body))["access_token"])


async def test_a_user_lists_their_organizations_with_their_role(
    client: Client, accounts: Accounts
) -> None:
    token = await token_of(client, "ada@example.com")
    answer = await client.get("/auth/organizations", headers=bearer(token))
    assert answer.status_code == 200
    assert answer.json() == {
        "organizations": [
            {"organization_id": accounts.acme, "org_name": "Acme", "role": "org_admin"},
            {"organization_id": accounts.globex, "org_name": "Globex", "role": "org_client"},
        ]
    }
    assert (await client.get("/auth/organizations")).status_code == 401


async def test_creating_an_organization_needs_an_open_gateway_and_makes_the_caller_admin(
    client: Client, accounts: Accounts
) -> None:
    token = await token_of(client, "bob@example.com")
    closed = await client.post("/auth/organizations", json={"name": "Bobco"}, headers=bearer(token))
    assert closed.status_code == 403
    assert closed.json()["code"] == "organization_creation_closed"

    runtime = runtime_of(client)
    runtime.settings = runtime.settings.model_copy(update={"signup": "open"})
    unverified = await client.post(
        "/auth/organizations", json={"name": "Bobco"}, headers=bearer(token)
    )
    assert unverified.status_code == 403
    async with store_of(client) as db:
        bob = await db.get(User, accounts.bob)
        assert bob is not None
        bob.email_verified_at = utcnow()
    made = await client.post("/auth/organizations", json={"name": "Bobco"}, headers=bearer(token))
    assert made.status_code == 201, made.text
    assert made.json()["org_name"] == "Bobco"
    mine = (await client.get("/auth/organizations", headers=bearer(token))).json()
    assert mine["organizations"] == [
        {
            "organization_id": made.json()["organization_id"],
            "org_name": "Bobco",
            "role": "org_admin",
        }
    ]
    again = await client.post("/auth/organizations", json={"name": "Bobco"}, headers=bearer(token))
    assert again.status_code == 409
    async with store_of(client) as db:
        creators = await db.scalars(
            select(AuthEvent.user_id).where(AuthEvent.type == "organization_created")
        )
        # The audit trail names who created it (regression: it used to record no user).
        assert accounts.bob in list(creators)


async def test_only_an_org_admin_renames_and_outsiders_cannot_tell_ids_apart(
    client: Client, accounts: Accounts
) -> None:
    ada = await token_of(client, "ada@example.com")
    renamed = await client.patch(
        f"/auth/organizations/{accounts.acme}", json={"name": "Acme Ltd"}, headers=bearer(ada)
    )
    assert renamed.status_code == 200
    assert renamed.json() == {"organization_id": accounts.acme, "org_name": "Acme Ltd"}
    # Ada is only a client of Globex; Bob belongs nowhere; 999 does not exist: one answer.
    for token, organization_id in (
        (ada, accounts.globex),
        (ada, 999),
        (
            await token_of(client, "bob@example.com"),
            accounts.acme,
        ),
    ):
        refused = await client.patch(
            f"/auth/organizations/{organization_id}", json={"name": "X"}, headers=bearer(token)
        )
        assert refused.status_code == 403
        assert refused.json() == {
            "code": "not_org_admin",
            "message": "You are not an org_admin of that organization.",
        }


async def test_members_come_in_pages_ordered_by_user_id(client: Client, accounts: Accounts) -> None:
    ids = [accounts.ada] + [
        await add_user(client, f"m{n}@example.com", accounts.acme, "org_client") for n in range(4)
    ]
    ada = await token_of(client, "ada@example.com")
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await client.get(
            f"/auth/organizations/{accounts.acme}/members", params=query, headers=bearer(ada)
        )
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["members"]) <= 2
        seen += [member["user_id"] for member in body["members"]]
        pages += 1
        cursor = body.get("next")
        if cursor is None:
            break
    assert seen == sorted(ids)
    assert pages == 3
    bad = await client.get(
        f"/auth/organizations/{accounts.acme}/members",
        params={"cursor": "x1"},
        headers=bearer(ada),
    )
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_cursor"
    client_token = await token_of(client, "m0@example.com")
    refused = await client.get(
        f"/auth/organizations/{accounts.acme}/members", headers=bearer(client_token)
    )
    assert refused.status_code == 403


async def test_the_last_org_admin_cannot_leave_be_removed_or_be_demoted(
    client: Client, accounts: Accounts
) -> None:
    ada = await token_of(client, "ada@example.com")
    base = f"/auth/organizations/{accounts.acme}"
    answers = [
        await client.post(f"{base}/leave", headers=bearer(ada)),
        await client.delete(f"{base}/members/{accounts.ada}", headers=bearer(ada)),
        await client.patch(
            f"{base}/members/{accounts.ada}", json={"role": "org_client"}, headers=bearer(ada)
        ),
    ]
    assert [(a.status_code, a.json()["code"]) for a in answers] == [(409, "last_org_admin")] * 3
    # With a second admin, Ada may leave.
    await add_user(client, "eve@example.com", accounts.acme, "org_admin")
    assert (await client.post(f"{base}/leave", headers=bearer(ada))).status_code == 204
    # Her session acted for Acme: it ended with the membership.
    assert (await client.get("/auth/organizations", headers=bearer(ada))).status_code == 401
    fresh = await token_of(client, "ada@example.com")
    mine = (await client.get("/auth/organizations", headers=bearer(fresh))).json()
    assert [o["organization_id"] for o in mine["organizations"]] == [accounts.globex]


async def test_concurrent_demotion_of_the_last_two_admins_leaves_one(
    client: Client, accounts: Accounts
) -> None:
    eve = await add_user(client, "eve@example.com", accounts.acme, "org_admin")
    ada_token = await token_of(client, "ada@example.com")
    eve_token = await token_of(client, "eve@example.com")
    base = f"/auth/organizations/{accounts.acme}/members"
    answers = await asyncio.gather(
        client.patch(f"{base}/{eve}", json={"role": "org_client"}, headers=bearer(ada_token)),
        client.patch(
            f"{base}/{accounts.ada}", json={"role": "org_client"}, headers=bearer(eve_token)
        ),
    )
    statuses = sorted(a.status_code for a in answers)
    # One demotion wins; the other is refused as the last admin, or because its caller has just
    # been demoted (their session in Acme ended), depending on which ran first.
    assert statuses[0] == 200, [a.text for a in answers]
    assert statuses[1] in (401, 403, 409)
    async with store_of(client) as db:
        admins = await db.scalar(
            select(func.count())
            .select_from(Membership)
            .where(Membership.organization_id == accounts.acme, Membership.role == "org_admin")
        )
    assert admins == 1


async def test_removal_ends_only_that_organizations_sessions(
    client: Client, accounts: Accounts
) -> None:
    carol = await add_user(
        client, "carol@example.com", accounts.acme, "org_client", accounts.globex
    )
    in_acme = await token_of(client, "carol@example.com", accounts.acme)
    in_globex = await token_of(client, "carol@example.com", accounts.globex)
    ada = await token_of(client, "ada@example.com", accounts.acme)

    removed = await client.delete(
        f"/auth/organizations/{accounts.acme}/members/{carol}", headers=bearer(ada)
    )
    assert removed.status_code == 204

    assert (await client.get("/auth/me", headers=bearer(in_acme))).status_code == 401
    assert (await client.get("/auth/me", headers=bearer(in_globex))).status_code == 200
    again = await client.delete(
        f"/auth/organizations/{accounts.acme}/members/{carol}", headers=bearer(ada)
    )
    assert again.status_code == 404


async def test_demotion_ends_the_members_sessions_there_and_promotion_does_not(
    client: Client, accounts: Accounts
) -> None:
    dan = await add_user(client, "dan@example.com", accounts.acme, "org_client")
    ada = await token_of(client, "ada@example.com", accounts.acme)
    dan_token = await token_of(client, "dan@example.com")
    url = f"/auth/organizations/{accounts.acme}/members/{dan}"

    promoted = await client.patch(url, json={"role": "org_admin"}, headers=bearer(ada))
    assert promoted.status_code == 200
    assert promoted.json() == {"user_id": dan, "email": "dan@example.com", "role": "org_admin"}
    assert (await client.get("/auth/me", headers=bearer(dan_token))).status_code == 200

    dan_admin = await token_of(client, "dan@example.com")
    demoted = await client.patch(url, json={"role": "org_client"}, headers=bearer(ada))
    assert demoted.status_code == 200
    assert (await client.get("/auth/me", headers=bearer(dan_admin))).status_code == 401
    bad_role = await client.patch(url, json={"role": "owner"}, headers=bearer(ada))
    assert bad_role.status_code == 400


async def test_cookie_authenticated_changes_need_the_csrf_header(
    client: Client, accounts: Accounts, auth_settings: Settings
) -> None:
    session = await cookie_login(client)
    cookies = cookie_header(gw_access=session.access, gw_csrf=session.csrf)
    url = f"/auth/organizations/{accounts.acme}"
    refused = await client.patch(url, json={"name": "Acme 2"}, headers=cookies)
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    allowed = await client.patch(
        url, json={"name": "Acme 2"}, headers={**cookies, "X-CSRF-Token": session.csrf}
    )
    assert allowed.status_code == 200
    # Reading needs no CSRF token.
    assert (await client.get("/auth/organizations", headers=cookies)).status_code == 200
