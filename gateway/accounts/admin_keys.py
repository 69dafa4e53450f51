"""Admin API keys: created by an operator, stored as a hash, scoped, revocable, audited."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.errors import GatewayError, InvalidInput, NotFound
from gateway.store import AdminKey, fresh_id, record_event

#: What a key may be allowed to do; every /admin endpoint names the one scope it needs.
ADMIN_SCOPES = ("users:read", "users:write", "organizations:read")

# A fixed, greppable prefix lets secret scanners spot a leaked key; 32 random bytes follow.
PREFIX = "pgw_ak_"
_SHAPE = re.compile(r"^pgw_ak_[A-Za-z0-9_-]{43}$")
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")
_USE_RESOLUTION = timedelta(minutes=1)


class InvalidAdminKey(GatewayError):
    """Unknown, malformed or revoked: one answer for all, so a caller learns nothing of which."""

    code = "invalid_admin_key"
    status = 401


class AdminScopeMissing(GatewayError):
    code = "admin_scope_missing"
    status = 403


class AdminKeyNotFound(NotFound):
    code = "admin_key_not_found"


class InvalidAdminScope(InvalidInput):
    code = "invalid_admin_scope"


def hash_admin_key(key: str) -> str:
    """SHA-256 (hex): the key is 256 random bits, so no slow hash is needed against guessing."""
    return hashlib.sha256(key.encode()).hexdigest()


def check_scopes(scopes: list[str]) -> list[str]:
    """The scopes, deduplicated in the order of :data:`ADMIN_SCOPES`; an unknown one refused."""
    unknown = sorted(set(scopes) - set(ADMIN_SCOPES))
    if unknown or not scopes:
        raise InvalidAdminScope(
            f"Give one or more scopes of: {', '.join(ADMIN_SCOPES)}"
            + (f" (unknown: {', '.join(unknown)})." if unknown else ".")
        )
    return [scope for scope in ADMIN_SCOPES if scope in scopes]


async def create_admin_key(
    db: AsyncSession, *, name: str, scopes: list[str], now: datetime
) -> tuple[AdminKey, str]:
    """A new key in the caller's transaction; the plain key is returned once, never stored."""
    if not _NAME.fullmatch(name):
        raise InvalidInput("An admin key's name is 1 to 200 printable characters.")
    key = PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    record = AdminKey(
        id=await fresh_id(db, AdminKey),
        name=name,
        key_hash=hash_admin_key(key),
        scopes=check_scopes(scopes),
        created_at=now,
    )
    db.add(record)
    await db.flush()
    record_event(
        db, "admin_key_created", details={"admin_key_id": record.id, "scopes": record.scopes}
    )
    return record, key


async def list_admin_keys(db: AsyncSession) -> list[AdminKey]:
    return list((await db.scalars(select(AdminKey).order_by(AdminKey.created_at))).all())


async def revoke_admin_key(db: AsyncSession, *, key_id: int, now: datetime) -> AdminKey:
    """Revoke a key (idempotent); the next request with it is refused."""
    record = await db.get(AdminKey, key_id, with_for_update=True)
    if record is None:
        raise AdminKeyNotFound("There is no admin key with that id.")
    if record.revoked_at is None:
        record.revoked_at = now
        record_event(db, "admin_key_revoked", details={"admin_key_id": record.id})
    return record


async def authorize_admin_key(db: AsyncSession, *, key: str, scope: str, now: datetime) -> AdminKey:
    """The live key behind ``key`` if it holds ``scope``.

    The key is found by its hash (a database lookup on SHA-256, so no comparison of secrets
    happens in Python at all); a malformed key is refused before any query, with the same
    answer as an unknown or revoked one.
    """
    if scope not in ADMIN_SCOPES:
        raise ValueError(f"unknown admin scope {scope!r}")
    if not _SHAPE.fullmatch(key):
        raise InvalidAdminKey("The admin key is invalid or revoked.")
    record = await db.scalar(select(AdminKey).where(AdminKey.key_hash == hash_admin_key(key)))
    if record is None or record.revoked_at is not None:
        raise InvalidAdminKey("The admin key is invalid or revoked.")
    if scope not in record.scopes:
        raise AdminScopeMissing(f"This admin key lacks the scope {scope}.")
    return record


def note_admin_key_use(record: AdminKey, *, now: datetime) -> None:
    """Date the key's last use, at most once a minute: a busy key must not make every read
    request a write on one row (which would serialize them, and hold SQLite's write lock)."""
    if record.last_used_at is None or now - record.last_used_at > _USE_RESOLUTION:
        record.last_used_at = now
