"""Link tokens on SQLite and PostgreSQL: spent once, refused alike for every reason, not stored."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from gateway.accounts import (
    LinkTokenRefused,
    issue_link_token,
    revoke_link_tokens,
    spend_link_token,
)
from gateway.settings import Settings
from gateway.store import User
from gateway.store.engine import make_engine, make_sessionmaker
from tests.conftest import dump_store

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
USER_ID = 2**40 + 7


async def add_user(settings: Settings) -> None:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine).begin() as db:
            db.add(
                User(
                    id=USER_ID,
                    email="Ada@Example.com",
                    email_normalized="ada@example.com",
                    password_hash="$argon2id$x",
                    db_role="authenticated",
                )
            )
    finally:
        await engine.dispose()


async def issue(settings: Settings, *, purpose: str = "password_reset", ttl: int = 3600) -> str:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine).begin() as db:
            return await issue_link_token(
                db, purpose=purpose, email="Ada@Example.com", user_id=USER_ID, ttl=ttl, now=NOW
            )
    finally:
        await engine.dispose()


async def spend(
    settings: Settings, token: str, *, purpose: str = "password_reset", at: datetime = NOW
) -> int | None:
    """Spend in a transaction of its own; the user id of the token, or LinkTokenRefused."""
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine).begin() as db:
            row = await spend_link_token(db, purpose=purpose, token=token, now=at)
            return row.user_id
    finally:
        await engine.dispose()


async def refusal_of(settings: Settings, token: str, **options: object) -> tuple[str, str, int]:
    with pytest.raises(LinkTokenRefused) as refused:
        await spend(settings, token, **options)  # type: ignore[arg-type]
    return refused.value.code, refused.value.message, refused.value.status


@pytest.fixture
async def store_with_user(migrated_store: Settings) -> Settings:
    await add_user(migrated_store)
    return migrated_store


async def test_a_token_is_spent_once_and_carries_what_it_was_issued_for(
    store_with_user: Settings,
) -> None:
    token = await issue(store_with_user)
    engine = make_engine(store_with_user)
    async with make_sessionmaker(engine).begin() as db:
        row = await spend_link_token(db, purpose="password_reset", token=token, now=NOW)
    await engine.dispose()

    assert (row.purpose, row.user_id, row.email) == ("password_reset", USER_ID, "ada@example.com")
    assert row.used_at == NOW
    assert row.expires_at == NOW + timedelta(hours=1)
    assert await refusal_of(store_with_user, token) == (
        "invalid_link_token",
        "This link is invalid or has expired. Ask for a new one.",
        400,
    )


async def test_the_store_holds_the_tokens_hash_never_the_token(store_with_user: Settings) -> None:
    token = await issue(store_with_user)

    stored = repr(await asyncio.to_thread(dump_store, store_with_user))
    assert token not in stored
    assert token.removeprefix("pgw_lt_") not in stored


async def test_every_reason_to_refuse_gives_the_same_error(store_with_user: Settings) -> None:
    used = await issue(store_with_user)
    await spend(store_with_user, used)
    expired = await issue(store_with_user, ttl=60)
    other_purpose = await issue(store_with_user, purpose="verify_email")
    revoked = await issue(store_with_user)
    engine = make_engine(store_with_user)
    async with make_sessionmaker(engine).begin() as db:
        await revoke_link_tokens(db, purpose="password_reset", user_id=USER_ID, now=NOW)
    await engine.dispose()
    unknown = "pgw_lt_" + "A" * 43

    refusals = {
        "used": await refusal_of(store_with_user, used),
        "expired": await refusal_of(store_with_user, expired, at=NOW + timedelta(seconds=60)),
        "another purpose": await refusal_of(store_with_user, other_purpose),
        "revoked": await refusal_of(store_with_user, revoked),
        "unknown": await refusal_of(store_with_user, unknown),
        "malformed": await refusal_of(store_with_user, "' OR 1=1 --"),
        "empty": await refusal_of(store_with_user, ""),
        "too long": await refusal_of(store_with_user, unknown + "A"),
    }

    assert len(set(refusals.values())) == 1, refusals
    assert await spend(store_with_user, other_purpose, purpose="verify_email") == USER_ID


async def test_a_token_is_good_until_the_second_it_expires(store_with_user: Settings) -> None:
    token = await issue(store_with_user, ttl=60)

    assert await spend(store_with_user, token, at=NOW + timedelta(seconds=59)) == USER_ID


async def test_two_concurrent_spends_of_one_token_make_exactly_one_success(
    store_with_user: Settings,
) -> None:
    for _ in range(5):
        token = await issue(store_with_user)

        outcomes = await asyncio.gather(
            spend(store_with_user, token), spend(store_with_user, token), return_exceptions=True
        )

        assert sorted(type(outcome).__name__ for outcome in outcomes) == [
            "LinkTokenRefused",
            "int",
        ]


async def test_a_spend_rolled_back_leaves_the_token_usable(store_with_user: Settings) -> None:
    token = await issue(store_with_user)
    engine = make_engine(store_with_user)
    async with make_sessionmaker(engine)() as db:
        await spend_link_token(db, purpose="password_reset", token=token, now=NOW)
        await db.rollback()
    await engine.dispose()

    assert await spend(store_with_user, token) == USER_ID


async def test_revoking_by_email_withdraws_only_that_purposes_unspent_tokens(
    store_with_user: Settings,
) -> None:
    first, second = await issue(store_with_user), await issue(store_with_user)
    verification = await issue(store_with_user, purpose="verify_email")
    await spend(store_with_user, first)

    engine = make_engine(store_with_user)
    async with make_sessionmaker(engine).begin() as db:
        revoked = await revoke_link_tokens(
            db, purpose="password_reset", email="ADA@example.com", now=NOW
        )
    await engine.dispose()

    assert revoked == 1
    await refusal_of(store_with_user, second)
    assert await spend(store_with_user, verification, purpose="verify_email") == USER_ID


async def test_an_unknown_purpose_is_a_programming_error_not_a_refusal(
    store_with_user: Settings,
) -> None:
    with pytest.raises(ValueError, match="purpose"):
        await spend(store_with_user, "pgw_lt_" + "A" * 43, purpose="login")
