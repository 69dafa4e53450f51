"""``gateway users verify`` and ``gateway users list``: the operator's view of sign-ups."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from click.testing import CliRunner, Result

from gateway.accounts.passwords import PasswordHashing
from gateway.accounts.users import create_user
from gateway.cli import cli
from gateway.settings import Settings
from gateway.store import make_engine, make_sessionmaker
from tests.conftest import dump_store

PASSWORD = "correct horse battery"


def gateway(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def gateway_json(env: dict[str, str], *args: str) -> Any:
    result = gateway(env, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def self_signed_up(settings: Settings, *emails: str) -> None:
    """Users as a sign-up makes them: unverified."""

    async def create() -> None:
        engine = make_engine(settings)
        passwords = PasswordHashing(workers=1)
        try:
            async with make_sessionmaker(engine).begin() as db:
                for email in emails:
                    await create_user(
                        db=db,
                        passwords=passwords,
                        settings=settings,
                        email=email,
                        password=PASSWORD,
                    )
        finally:
            passwords.close()
            await engine.dispose()

    asyncio.run(create())


def test_verify_marks_an_unverified_user_and_is_idempotent(
    migrated_store: Settings, store_env: dict[str, str]
) -> None:
    self_signed_up(migrated_store, "grace@example.com")

    first = gateway_json(store_env, "users", "verify", "Grace@example.com")
    again = gateway_json(store_env, "users", "verify", "grace@example.com")

    assert first["email"] == "grace@example.com"
    assert first["email_verified_at"] is not None
    assert again["email_verified_at"] == first["email_verified_at"]


def test_verify_of_an_unknown_user_is_refused_in_one_line_and_writes_nothing(
    migrated_store: Settings, store_env: dict[str, str]
) -> None:
    before = dump_store(migrated_store)

    result = gateway(store_env, "users", "verify", "nobody@example.com")

    assert result.exit_code == 1
    assert result.stderr == "gateway: error: There is no user with that email address.\n"
    assert dump_store(migrated_store) == before


def test_list_pages_through_every_user_in_id_order(
    migrated_store: Settings, store_env: dict[str, str]
) -> None:
    emails = [f"user{n}@example.com" for n in range(5)]
    self_signed_up(migrated_store, *emails)
    gateway_json(store_env, "users", "verify", "user3@example.com")

    pages, after = [], None
    while True:
        page = gateway_json(
            store_env, "users", "list", "--limit", "2", *(["--after", str(after)] if after else [])
        )
        pages.append(page["users"])
        after = page["next_after"]
        if after is None:
            break

    listed = [user for page in pages for user in page]
    assert sorted(user["email"] for user in listed) == emails
    assert [user["user_id"] for user in listed] == sorted(user["user_id"] for user in listed)
    assert [len(page) for page in pages] == [2, 2, 1]
    verified = {user["email"] for user in listed if user["email_verified_at"] is not None}
    assert verified == {"user3@example.com"}
    text = gateway(store_env, "users", "list").stdout
    assert "user0@example.com  active  (unverified)" in text
    assert "user3@example.com  active\n" in text
