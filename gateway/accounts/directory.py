"""Finding users and organizations across the platform, a page at a time (admin API and CLI)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import InvalidInput
from gateway.store import Membership, Organization, User

MAX_PAGE = 200


def _check_page(limit: int, query: str | None) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}.")
    if query is not None and (len(query) > 320 or any(ord(c) < 0x20 for c in query)):
        raise InvalidInput("The search text is at most 320 printable characters.")


def _contains(text: str) -> str:
    # A bound LIKE pattern (never pasted into SQL) with the LIKE metacharacters escaped, so a
    # search for "a_b" finds "a_b", not "axb".
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def search_users(
    db: AsyncSession, *, query: str | None = None, limit: int = 50, after: int | None = None
) -> list[User]:
    """Users whose email contains ``query`` (any case), by id, after the id ``after``; deleted
    users are left out."""
    _check_page(limit, query)
    statement = select(User).where(User.deleted_at.is_(None))
    if query:
        statement = statement.where(User.email_normalized.like(_contains(query), escape="\\"))
    if after is not None:
        statement = statement.where(User.id > after)
    return list((await db.scalars(statement.order_by(User.id).limit(limit))).all())


async def search_organizations(
    db: AsyncSession, *, query: str | None = None, limit: int = 50, after: int | None = None
) -> list[tuple[Organization, int]]:
    """Organizations whose name contains ``query`` (any case), by id, with their member count."""
    _check_page(limit, query)
    members = (
        select(func.count())
        .where(Membership.organization_id == Organization.id)
        .correlate(Organization)
        .scalar_subquery()
    )
    statement = select(Organization, members)
    if query:
        statement = statement.where(
            func.lower(Organization.name).like(_contains(query), escape="\\")
        )
    if after is not None:
        statement = statement.where(Organization.id > after)
    rows = (await db.execute(statement.order_by(Organization.id).limit(limit))).all()
    return [(organization, count) for organization, count in rows]
