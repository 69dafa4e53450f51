"""The gateway's tables. They run unchanged on SQLite and PostgreSQL (schema ``gateway`` there)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

USER_STATUSES = ("active", "suspended")
ORG_ROLES = ("org_admin", "org_client")
LINK_PURPOSES = ("verify_email", "password_reset", "invitation")
KEY_STATES = ("next", "current", "retiring")

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
AutoIncrementId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python, whatever the database keeps.

    SQLite has no timezone type and hands back naive values; comparing those with aware ones
    raises, so every value is normalised here once.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("status", USER_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    # As the user typed it, for display; uniqueness and look-ups use the normalised form.
    email: Mapped[str] = mapped_column(String(320))
    email_normalized: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="active")
    db_role: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    last_organization_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="SET NULL"), nullable=True
    )
    # When the user proved they receive mail at ``email`` (a verification link, an invitation
    # accepted, or an operator creating them with the CLI); NULL: not proven.
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Deleted users keep their row, emptied of personal data (see accounts/deletion.py): their
    # revoked sessions must outlive their tokens, and audit rows keep pointing at an id.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint(_in("role", ORG_ROLES), name="role"),
        Index(None, "organization_id"),
    )

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Session(Base):
    """A sign-in: the ``sid`` claim of every token issued for it."""

    __tablename__ = "sessions"
    __table_args__ = (
        Index(None, "user_id"),
        Index(None, "revoked_at"),
        Index(None, "revocation_mark"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    organization_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # Set by the database, never by the gateway: on PostgreSQL a trigger stamps each revocation
    # with the id of the transaction that wrote it (see gateway/revocation/feed.py for why
    # that, and not revoked_at, orders the revocation feed). NULL on SQLite.
    revocation_mark: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Set when switch-organization replaced this session: reuse of one of its refresh tokens
    # then ends the replacement too, so a thief cannot shed reuse detection by switching.
    replaced_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(512), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(45), nullable=True)


class RefreshToken(Base):
    """One refresh token, known only by its SHA-256 hash (hex)."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index(None, "session_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("sessions.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    successor_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class LinkToken(Base):
    """A single-use token sent by mail in a link, known only by its SHA-256 hash (hex).

    ``email`` is the address's look-up key (normalised, lower-case) the mail went to;
    ``user_id`` is the account it acts on (NULL for an invitation to someone without one);
    ``organization_id``, ``role`` and ``created_by`` say what an invitation grants and who sent
    it. A token is spent by setting ``used_at``, withdrawn by setting ``revoked_at``.
    """

    __tablename__ = "link_tokens"
    __table_args__ = (
        CheckConstraint(_in("purpose", LINK_PURPOSES), name="purpose"),
        CheckConstraint(_in("role", ORG_ROLES) + " OR role IS NULL", name="role"),
        Index(None, "user_id"),
        Index(None, "email"),
        Index(None, "expires_at"),
    )

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=True
    )
    email: Mapped[str] = mapped_column(String(320))
    organization_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("organizations.id", ondelete="CASCADE"), nullable=True
    )
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_by: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AdminKey(Base):
    """A key for the platform admin API (``gateway admin-keys create``): only its hash is kept."""

    __tablename__ = "admin_keys"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuthEvent(Base):
    """The audit trail. ``details`` never holds a password or a token."""

    __tablename__ = "auth_events"
    __table_args__ = (Index(None, "user_id", "at"),)

    id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(32))
    # No foreign key: the trail outlives the user it speaks of.
    user_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class LoginThrottle(Base):
    """Failed sign-ins, shared by every replica through the store.

    One row per (normalised email, client key) holds the hard lock of one address (an IPv6
    client by its /64); the row with client key ``*`` counts the email's failures from every
    address, the ceiling that slows a spray (gateway/sessions/_throttle.py).

    Keyed by the email and not by the user row, so an address that has no account is throttled
    exactly like one that has: the 429 must not tell an attacker which emails exist.
    """

    __tablename__ = "login_throttles"

    email_key: Mapped[str] = mapped_column(String(320), primary_key=True)
    client_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)
    last_lockout_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class LoginKnownAddress(Base):
    """A client key that signed in to an email successfully, and when it last did.

    Such an address is let through the email's ceiling (not through its own hard lock), so a
    spray from strangers does not lock the owner out of their usual networks.
    """

    __tablename__ = "login_known_addresses"

    email_key: Mapped[str] = mapped_column(String(320), primary_key=True)
    client_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_success_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServerSecret(Base):
    """Random secrets the gateway makes for itself (created by a migration, never exported)."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeystoreState(Base):
    """The database keystore's one row (``id`` 1, made by the migration).

    ``version`` grows with every key change, so a replica knows with one cheap read whether its
    keys are stale; a change locks this row first, which serialises changes between hosts.
    ``kek_salt`` is the keystore's scrypt salt and ``kek_check`` an AES-GCM seal of nothing
    under the key it derives, which tells a wrong passphrase from a damaged key;
    ``manifest_mac`` is an HMAC-SHA256 (under another key derived from it) of every key's kid,
    alg, state and times and the version, rewritten by every change: rows changed without the
    passphrase are refused. All three are NULL until the first key is made
    (gateway/tokens/_database.py).
    """

    __tablename__ = "keystore_state"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    kdf: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kek_salt: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    kek_check: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    manifest_mac: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SigningKey(Base):
    """A signing key of the database keystore: its manifest entry and its sealed private key.

    ``sealed`` is the PKCS#8 DER private key under AES-256-GCM (12-byte nonce, then ciphertext
    and tag) with the kid and alg as associated data: moved to another row it fails to open.
    """

    __tablename__ = "signing_keys"
    __table_args__ = (CheckConstraint(_in("state", KEY_STATES), name="state"),)

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
