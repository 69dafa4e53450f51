"""Ending sessions (the write side) and the feed every gateway process reads them from."""

from __future__ import annotations

from gateway.revocation.ending import (
    announce_user_standing,
    revoke_organization_sessions,
    revoke_replacements,
    revoke_session,
    revoke_user_sessions,
)
from gateway.revocation.feed import Revocations, announce_revocation

__all__ = [
    "Revocations",
    "announce_revocation",
    "announce_user_standing",
    "revoke_organization_sessions",
    "revoke_replacements",
    "revoke_session",
    "revoke_user_sessions",
]
