"""What a presented refresh token still allows, decided without I/O (refresh and switching)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from gateway.errors import GatewayError
from gateway.sessions._identity import MembershipView
from gateway.sessions.errors import (
    RefreshTokenReused,
    RefreshTokenRotated,
    SessionExpired,
    SessionRevoked,
    UserSuspended,
)
from gateway.store import Session, User


def reused() -> RefreshTokenReused:
    return RefreshTokenReused("This refresh token was already used; the session has been ended.")


class Standing(Enum):
    """A held token's session and user, looked at before the token is spent."""

    USABLE = "usable"
    #: The session is revoked for the suspension, and that is committed before the 403.
    USER_SUSPENDED = "user_suspended"
    #: Logged out, suspended, or ended for a reuse: refused, nothing written.
    ENDED = "ended"
    #: Replaced by a switch-organization: whoever presents one of its tokens holds a copy, so
    #: its replacements end and the reuse is recorded, committed before the 401.
    REPLACED = "replaced"
    #: Past its expiry: refused, nothing written.
    EXPIRED = "expired"

    def refusal(self) -> GatewayError | None:
        """What the client is told; None when the token may be spent."""
        if self is Standing.USER_SUSPENDED:
            return UserSuspended("This account is suspended.")
        if self is Standing.ENDED:
            return SessionRevoked("This session has ended; sign in again.")
        if self is Standing.REPLACED:
            return reused()
        if self is Standing.EXPIRED:
            return SessionExpired("This session has expired; sign in again.")
        return None


def standing_of(session: Session, user: User, *, now: datetime) -> Standing:
    if user.status != "active":
        # Said before "session revoked": suspension revokes the sessions too.
        return Standing.USER_SUSPENDED
    if session.revoked_at is not None:
        # A replaced session's token, used or not, inside the grace window or not: the switch
        # spent the session's newest token, so a token of it is a copy whatever its state.
        return Standing.ENDED if session.replaced_by is None else Standing.REPLACED
    if session.expires_at <= now:
        return Standing.EXPIRED
    return Standing.USABLE


@dataclass(frozen=True, slots=True)
class TokenUse:
    """A refresh token's row as the compare-and-set that spends it left it."""

    #: This transaction marked it used.
    spent_now: bool
    used_at: datetime | None
    successor_hash: str | None


class Spend(Enum):
    """What spending the token came to."""

    #: Spent here: a refresh stores its successor, a switch starts the new session.
    FIRST_USE = "first_use"
    #: A refresh that lost a race with a refresh of the same token moments ago: it gets the
    #: same successor again, and nothing is written.
    REPEAT = "repeat"
    #: A switch beaten by a refresh of the same token moments ago: the client holds a newer
    #: token and may retry with it; nothing is ended (409).
    ROTATED = "rotated"
    #: A second use: the session and every session that replaced it end (401).
    REUSED = "reused"

    def refusal(self) -> GatewayError | None:
        if self is Spend.ROTATED:
            return RefreshTokenRotated(
                "This refresh token was just rotated; retry with the newest one."
            )
        if self is Spend.REUSED:
            return reused()
        return None


def in_grace(used_at: datetime | None, *, now: datetime, grace: int) -> bool:
    return used_at is not None and now - used_at <= timedelta(seconds=grace)


def refresh_spend(use: TokenUse, *, successor_hash: str, now: datetime, grace: int) -> Spend:
    """A token used before is a lost race only within the grace window and for this successor.

    The successor is derived from the token, so a matching one says the earlier use was a
    refresh of this very token (a switch leaves none).
    """
    if use.spent_now:
        return Spend.FIRST_USE
    if in_grace(use.used_at, now=now, grace=grace) and use.successor_hash == successor_hash:
        return Spend.REPEAT
    return Spend.REUSED


def switch_spend(use: TokenUse, *, now: datetime, grace: int) -> Spend:
    if use.spent_now:
        return Spend.FIRST_USE
    # Only a refresh leaves a successor: a winner without one was a switch, whose new session
    # descends from this token (SQLite, no row locks), so this is reuse.
    if use.successor_hash is not None and in_grace(use.used_at, now=now, grace=grace):
        return Spend.ROTATED
    return Spend.REUSED


def held_membership(
    organization_id: int, memberships: list[MembershipView]
) -> MembershipView | None:
    """The membership a session acts in, if the user still holds it."""
    return {m.organization_id: m for m in memberships}.get(organization_id)


def membership_removed() -> SessionRevoked:
    return SessionRevoked("You are no longer a member of this organization.")
