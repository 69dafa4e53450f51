"""Link tokens: the single-use, expiring secrets in verification, reset and invitation mails."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts.errors import LinkTokenRefused
from gateway.accounts.users import normalize_email
from gateway.store import LINK_PURPOSES, ORG_ROLES, LinkToken

# A fixed, greppable prefix lets secret scanners spot a leaked token (as pgw_rt_ does for
# refresh tokens); 32 random bytes in unpadded base64url make the 43 characters after it.
PREFIX = "pgw_lt_"
_SHAPE = re.compile(r"^pgw_lt_[A-Za-z0-9_-]{43}$")

# One message for every refusal: a client must not learn whether a token existed, was used,
# expired or belongs to another purpose.
REFUSAL = "This link is invalid or has expired. Ask for a new one."


def new_link_token() -> str:
    """A fresh token: 256 bits from the OS's CSPRNG."""
    return PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()


def looks_like_link_token(token: str) -> bool:
    return bool(_SHAPE.fullmatch(token))


def hash_link_token(token: str) -> str:
    """What the store keeps: SHA-256 (hex) suffices for 256 random bits, no dictionary exists."""
    return hashlib.sha256(token.encode()).hexdigest()


def _check_purpose(purpose: str) -> None:
    if purpose not in LINK_PURPOSES:
        raise ValueError(f"unknown link token purpose {purpose!r}")


async def issue_link_token(
    db: AsyncSession,
    *,
    purpose: str,
    email: str,
    ttl: int,
    now: datetime,
    user_id: int | None = None,
    organization_id: int | None = None,
    role: str | None = None,
    created_by: int | None = None,
) -> str:
    """Store a new token for ``purpose`` in the caller's transaction; return it in plain text.

    The plaintext exists only in the return value: put it in the mail's link (``MailMessage``)
    and nowhere else (no log, no audit detail, no answer body). ``email`` is stored as its
    look-up key (``normalize_email``), ``ttl`` is in seconds from ``now``. Older tokens of the
    same purpose stay valid: call ``revoke_link_tokens`` first when a new one replaces them.
    """
    _check_purpose(purpose)
    if ttl <= 0:
        raise ValueError("a link token's ttl must be positive")
    if role is not None and role not in ORG_ROLES:
        raise ValueError(f"unknown organization role {role!r}")
    _, email_key = normalize_email(email)
    token = new_link_token()
    db.add(
        LinkToken(
            token_hash=hash_link_token(token),
            purpose=purpose,
            user_id=user_id,
            email=email_key,
            organization_id=organization_id,
            role=role,
            created_by=created_by,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
    )
    await db.flush()
    return token


async def spend_link_token(
    db: AsyncSession, *, purpose: str, token: str, now: datetime
) -> LinkToken:
    """Spend ``token`` for ``purpose`` in the caller's transaction and return its row.

    Refuses with ``LinkTokenRefused`` (400 ``invalid_link_token``, one message) a malformed
    token (before any query), an unknown one, one of another purpose, an expired, used or
    revoked one. The token is found by its hash (an index look-up, no comparison of secrets in
    Python), and spent by one conditional UPDATE: it takes the row's write lock on PostgreSQL
    (a concurrent spend waits, then finds ``used_at`` set and matches nothing) and SQLite's
    database write lock, so of two spends of one token exactly one succeeds on both stores,
    where a SELECT ... FOR UPDATE would lock nothing on SQLite. The spend only counts when the
    caller's transaction commits: roll it back and the token is usable again.
    """
    _check_purpose(purpose)
    if not looks_like_link_token(token):
        raise LinkTokenRefused(REFUSAL)
    token_hash = hash_link_token(token)
    result = await db.execute(
        update(LinkToken)
        .where(
            LinkToken.token_hash == token_hash,
            LinkToken.purpose == purpose,
            LinkToken.used_at.is_(None),
            LinkToken.revoked_at.is_(None),
            LinkToken.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    if result.rowcount != 1:
        raise LinkTokenRefused(REFUSAL)
    row = await db.scalar(
        select(LinkToken)
        .where(LinkToken.token_hash == token_hash)
        .execution_options(populate_existing=True)
    )
    assert row is not None  # updated a moment ago in this very transaction
    return row


async def revoke_link_tokens(
    db: AsyncSession,
    *,
    purpose: str,
    now: datetime,
    user_id: int | None = None,
    email: str | None = None,
) -> int:
    """Withdraw every unspent token of ``purpose`` for ``user_id`` or ``email``; return how many.

    Give exactly one of ``user_id`` and ``email`` (compared by its look-up key). For example:
    a new reset link revokes the older ones, a password change revokes every reset link, an
    accepted invitation revokes the other invitations to that address.
    """
    _check_purpose(purpose)
    if (user_id is None) == (email is None):
        raise ValueError("give exactly one of user_id and email")
    if user_id is not None:
        whose = LinkToken.user_id == user_id
    else:
        assert email is not None
        whose = LinkToken.email == normalize_email(email)[1]
    result = await db.execute(
        update(LinkToken)
        .where(
            whose,
            LinkToken.purpose == purpose,
            LinkToken.used_at.is_(None),
            LinkToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount
