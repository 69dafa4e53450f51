"""The gateway's own database: models, engine, migrations, the audit log, ids."""

from __future__ import annotations

from gateway.store.audit import record_event
from gateway.store.engine import asyncpg_dsn, make_engine, make_sessionmaker
from gateway.store.ids import ID_MAX, fresh_id
from gateway.store.lifecycle import describe_url, migrate_store, open_store, ping_store
from gateway.store.migrate import is_up_to_date
from gateway.store.models import (
    KEY_STATES,
    LINK_PURPOSES,
    ORG_ROLES,
    USER_STATUSES,
    AdminKey,
    AuthEvent,
    KeystoreState,
    LinkToken,
    LoginKnownAddress,
    LoginThrottle,
    Membership,
    Organization,
    RefreshToken,
    ServerSecret,
    Session,
    SigningKey,
    User,
    UTCDateTime,
    utcnow,
)

__all__ = [
    "ID_MAX",
    "KEY_STATES",
    "LINK_PURPOSES",
    "ORG_ROLES",
    "USER_STATUSES",
    "AdminKey",
    "AuthEvent",
    "KeystoreState",
    "LinkToken",
    "LoginKnownAddress",
    "LoginThrottle",
    "Membership",
    "Organization",
    "RefreshToken",
    "ServerSecret",
    "Session",
    "SigningKey",
    "UTCDateTime",
    "User",
    "asyncpg_dsn",
    "describe_url",
    "fresh_id",
    "is_up_to_date",
    "make_engine",
    "make_sessionmaker",
    "migrate_store",
    "open_store",
    "ping_store",
    "record_event",
    "utcnow",
]
