"""The audit trail: one ``auth_events`` row per security-relevant event."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.store.models import AuthEvent


def record_event(
    db: AsyncSession,
    event_type: str,
    *,
    user_id: int | None = None,
    ip: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add an event to the caller's transaction, so it lands exactly when the change does.

    ``details`` must never hold a password, a token or a hash of either.
    """
    db.add(AuthEvent(type=event_type, user_id=user_id, ip=ip, details=details or {}))
