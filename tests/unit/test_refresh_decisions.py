"""The decisions of refresh, switch-organization and sign-in, as tables, without a store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from gateway.accounts.passwords import MAX_PASSWORD_BYTES, PasswordHashing
from gateway.errors import GatewayError
from gateway.sessions._identity import MembershipView
from gateway.sessions._refresh_decision import (
    Spend,
    Standing,
    TokenUse,
    held_membership,
    in_grace,
    membership_removed,
    refresh_spend,
    standing_of,
    switch_spend,
)
from gateway.sessions.login import (
    Admitted,
    PasswordCheck,
    Refused,
    admit,
    refuse_suspended,
    refuse_unverified,
)
from gateway.sessions.switching import mismatch
from gateway.store.models import Session, User

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GRACE = 10
SUCCESSOR = "successor-hash"
ACME = MembershipView(organization_id=11, org_name="Acme", role="org_admin")
GLOBEX = MembershipView(organization_id=22, org_name="Globex", role="org_client")


def user(
    *, status: str = "active", last_organization_id: int | None = None, verified: bool = True
) -> User:
    return User(
        id=7,
        status=status,
        last_organization_id=last_organization_id,
        email_verified_at=NOW - timedelta(days=1) if verified else None,
    )


def session(
    *,
    revoked: bool = False,
    replaced: bool = False,
    expires_in: timedelta = timedelta(days=1),
    organization_id: int | None = ACME.organization_id,
) -> Session:
    return Session(
        id="sid-1",
        user_id=7,
        organization_id=organization_id,
        expires_at=NOW + expires_in,
        revoked_at=NOW - timedelta(minutes=1) if revoked or replaced else None,
        replaced_by="sid-2" if replaced else None,
    )


def refused(error: GatewayError | None) -> tuple[int, str] | None:
    return (error.status, error.code) if error is not None else None


# --- refresh: before the token is spent --------------------------------------------------------

STANDINGS = [
    ("a live session of an active user", session(), user(), Standing.USABLE, None),
    (
        "a suspended user",
        session(),
        user(status="suspended"),
        Standing.USER_SUSPENDED,
        (403, "user_suspended"),
    ),
    (
        "a suspended user, whose session suspension revoked",
        session(revoked=True),
        user(status="suspended"),
        Standing.USER_SUSPENDED,
        (403, "user_suspended"),
    ),
    (
        "a suspended user of an expired session",
        session(expires_in=-timedelta(seconds=1)),
        user(status="suspended"),
        Standing.USER_SUSPENDED,
        (403, "user_suspended"),
    ),
    (
        "a revoked session",
        session(revoked=True),
        user(),
        Standing.ENDED,
        (401, "session_revoked"),
    ),
    (
        "a revoked session that has expired too",
        session(revoked=True, expires_in=-timedelta(days=1)),
        user(),
        Standing.ENDED,
        (401, "session_revoked"),
    ),
    (
        "a session switch-organization replaced",
        session(replaced=True),
        user(),
        Standing.REPLACED,
        (401, "refresh_token_reused"),
    ),
    (
        "an expired session",
        session(expires_in=-timedelta(seconds=1)),
        user(),
        Standing.EXPIRED,
        (401, "session_expired"),
    ),
    (
        "a session that expires this very moment",
        session(expires_in=timedelta(0)),
        user(),
        Standing.EXPIRED,
        (401, "session_expired"),
    ),
]


@pytest.mark.parametrize(
    ("held", "user_", "standing", "answer"),
    [row[1:] for row in STANDINGS],
    ids=[row[0] for row in STANDINGS],
)
def test_what_a_held_token_allows_before_it_is_spent(
    held: Session, user_: User, standing: Standing, answer: tuple[int, str] | None
) -> None:
    assert standing_of(held, user_, now=NOW) is standing
    assert refused(standing.refusal()) == answer


# --- refresh: the spend ------------------------------------------------------------------------


def used(seconds_ago: float | None, successor: str | None = SUCCESSOR) -> TokenUse:
    """A token some earlier request spent ``seconds_ago`` (None: never), leaving ``successor``."""
    if seconds_ago is None:
        return TokenUse(spent_now=False, used_at=None, successor_hash=None)
    return TokenUse(
        spent_now=False,
        used_at=NOW - timedelta(seconds=seconds_ago),
        successor_hash=successor,
    )


FRESH = TokenUse(spent_now=True, used_at=NOW, successor_hash=SUCCESSOR)

REFRESH_SPENDS = [
    ("a fresh token, spent here", FRESH, Spend.FIRST_USE, None),
    ("used by a refresh within the grace window", used(3), Spend.REPEAT, None),
    ("used exactly at the end of the grace window", used(GRACE), Spend.REPEAT, None),
    (
        "used after the grace window",
        used(GRACE + 0.001),
        Spend.REUSED,
        (401, "refresh_token_reused"),
    ),
    (
        "used within the grace window, for another successor",
        used(3, successor="other"),
        Spend.REUSED,
        (401, "refresh_token_reused"),
    ),
    (
        "spent by a switch within the grace window (no successor)",
        used(3, successor=None),
        Spend.REUSED,
        (401, "refresh_token_reused"),
    ),
]


@pytest.mark.parametrize(
    ("use", "spend", "answer"),
    [row[1:] for row in REFRESH_SPENDS],
    ids=[row[0] for row in REFRESH_SPENDS],
)
def test_what_spending_a_token_comes_to_for_a_refresh(
    use: TokenUse, spend: Spend, answer: tuple[int, str] | None
) -> None:
    assert refresh_spend(use, successor_hash=SUCCESSOR, now=NOW, grace=GRACE) is spend
    assert refused(spend.refusal()) == answer


def test_the_grace_window_needs_an_earlier_use() -> None:
    assert not in_grace(None, now=NOW, grace=GRACE)
    assert in_grace(NOW, now=NOW, grace=0)
    assert not in_grace(NOW - timedelta(seconds=1), now=NOW, grace=0)


def test_a_session_acts_on_only_while_its_membership_is_held() -> None:
    assert held_membership(ACME.organization_id, [GLOBEX, ACME]) == ACME
    assert held_membership(ACME.organization_id, [GLOBEX]) is None
    assert held_membership(ACME.organization_id, []) is None
    removed = membership_removed()
    assert refused(removed) == (401, "session_revoked")
    assert removed.message == "You are no longer a member of this organization."


def test_the_refusals_say_what_the_client_is_told() -> None:
    messages = {
        standing: error.message
        for standing in Standing
        if (error := standing.refusal()) is not None
    }
    assert messages == {
        Standing.USER_SUSPENDED: "This account is suspended.",
        Standing.ENDED: "This session has ended; sign in again.",
        Standing.REPLACED: "This refresh token was already used; the session has been ended.",
        Standing.EXPIRED: "This session has expired; sign in again.",
    }
    assert {spend: refused(spend.refusal()) for spend in Spend} == {
        Spend.FIRST_USE: None,
        Spend.REPEAT: None,
        Spend.ROTATED: (409, "refresh_token_rotated"),
        Spend.REUSED: (401, "refresh_token_reused"),
    }
    reused, rotated = Spend.REUSED.refusal(), Spend.ROTATED.refusal()
    assert reused is not None
    assert rotated is not None
    assert reused.message == messages[Standing.REPLACED]
    assert rotated.message == "This refresh token was just rotated; retry with the newest one."
    # A refusal is made afresh each time: one raised never carries another's traceback.
    assert Standing.ENDED.refusal() is not Standing.ENDED.refusal()


# --- switch-organization -----------------------------------------------------------------------

SWITCH_SPENDS = [
    ("a fresh token, spent here", FRESH, Spend.FIRST_USE, None),
    (
        "beaten by a refresh of it within the grace window",
        used(3),
        Spend.ROTATED,
        (409, "refresh_token_rotated"),
    ),
    (
        "spent by a refresh after the grace window",
        used(GRACE + 1),
        Spend.REUSED,
        (401, "refresh_token_reused"),
    ),
    (
        "beaten by another switch (no successor) within the grace window",
        used(3, successor=None),
        Spend.REUSED,
        (401, "refresh_token_reused"),
    ),
]


@pytest.mark.parametrize(
    ("use", "spend", "answer"),
    [row[1:] for row in SWITCH_SPENDS],
    ids=[row[0] for row in SWITCH_SPENDS],
)
def test_what_spending_a_token_comes_to_for_a_switch(
    use: TokenUse, spend: Spend, answer: tuple[int, str] | None
) -> None:
    assert switch_spend(use, now=NOW, grace=GRACE) is spend
    assert refused(spend.refusal()) == answer


CLAIMS = {"sid": "sid-1", "sub": "7"}

MISMATCHES: list[tuple[str, dict[str, Any], int, tuple[int, str] | None]] = [
    ("one session's credentials, to another organization", CLAIMS, 22, None),
    (
        "an access token of another session",
        {**CLAIMS, "sid": "sid-9"},
        22,
        (401, "invalid_refresh_token"),
    ),
    ("an access token of another user", {**CLAIMS, "sub": "8"}, 22, (401, "invalid_refresh_token")),
    (
        "another session's, to the organization it is in",
        {**CLAIMS, "sid": "sid-9"},
        11,
        (401, "invalid_refresh_token"),
    ),
    ("to the organization it is in", CLAIMS, 11, (409, "already_in_organization")),
]


@pytest.mark.parametrize(
    ("claims", "organization_id", "answer"),
    [row[1:] for row in MISMATCHES],
    ids=[row[0] for row in MISMATCHES],
)
def test_a_switch_needs_one_sessions_credentials_and_another_organization(
    claims: dict[str, Any], organization_id: int, answer: tuple[int, str] | None
) -> None:
    assert refused(mismatch(claims, session(), user(), organization_id=organization_id)) == answer


# --- sign-in, after the right password ---------------------------------------------------------


def test_a_suspended_user_is_refused_and_the_audit_says_why() -> None:
    outcome = refuse_suspended(user(status="suspended"))

    assert isinstance(outcome, Refused)
    assert refused(outcome.error) == (403, "user_suspended")
    assert outcome.error.message == "This account is suspended."
    assert refuse_suspended(user()) is None


VERIFIED_EMAIL_RULES = [
    ("a verified address, verification required", True, True, None),
    ("an unverified address, verification required", False, True, (403, "email_not_verified")),
    ("an unverified address, verification not required", False, False, None),
    ("a verified address, verification not required", True, False, None),
]


@pytest.mark.parametrize(
    ("verified", "required", "answer"),
    [row[1:] for row in VERIFIED_EMAIL_RULES],
    ids=[row[0] for row in VERIFIED_EMAIL_RULES],
)
def test_an_unverified_address_is_refused_after_the_right_password_only_when_required(
    verified: bool, required: bool, answer: tuple[int, str] | None
) -> None:
    outcome = refuse_unverified(user(verified=verified), require_verified_email=required)

    assert refused(outcome.error if outcome is not None else None) == answer


SIGN_INS: list[tuple[str, User, list[MembershipView], int | None, object]] = [
    ("the organization asked for", user(), [ACME, GLOBEX], 22, Admitted(GLOBEX)),
    (
        "an organization the user is not in",
        user(),
        [ACME],
        22,
        (403, "not_a_member"),
    ),
    ("the one used last", user(last_organization_id=22), [ACME, GLOBEX], None, Admitted(GLOBEX)),
    ("else the oldest", user(last_organization_id=99), [ACME, GLOBEX], None, Admitted(ACME)),
    ("a user in no organization", user(), [], None, Admitted(None)),
    ("a user in no organization, asking for one", user(), [], 11, (403, "not_a_member")),
]


@pytest.mark.parametrize(
    ("user_", "memberships", "requested", "expected"),
    [row[1:] for row in SIGN_INS],
    ids=[row[0] for row in SIGN_INS],
)
def test_which_organization_a_sign_in_acts_in(
    user_: User, memberships: list[MembershipView], requested: int | None, expected: object
) -> None:
    outcome = admit(user_, memberships, requested)

    if isinstance(outcome, Refused):
        assert refused(outcome.error) == expected
    else:
        assert outcome == expected


@dataclass
class RecordingHashing:
    """Stands in for the argon2 pool: says yes to one password, and records each verification."""

    right: str
    verified: list[tuple[str, str]] = field(default_factory=list)

    async def verify(self, password_hash: str, password: str) -> bool:
        self.verified.append((password_hash, password))
        return password == self.right


def check(right: str) -> tuple[PasswordCheck, RecordingHashing]:
    hashing = RecordingHashing(right)
    return PasswordCheck(hashing=cast(PasswordHashing, hashing), dummy_hash="dummy"), hashing


async def test_every_sign_in_costs_one_verification_and_an_unknown_account_never_passes() -> None:
    passwords, hashing = check(right="hunter2")

    assert await passwords.verify("stored", "hunter2") is True
    assert await passwords.verify("stored", "wrong") is False
    # No account: the dummy hash is verified, and even a "yes" from it is no.
    assert await passwords.verify(None, "hunter2") is False
    assert hashing.verified == [("stored", "hunter2"), ("stored", "wrong"), ("dummy", "hunter2")]


async def test_a_password_over_the_byte_cap_is_verified_truncated_and_is_never_right() -> None:
    capped = "a" * MAX_PASSWORD_BYTES
    passwords, hashing = check(right=capped)

    assert await passwords.verify("stored", capped + "a") is False
    assert hashing.verified == [("stored", capped)]
    assert await passwords.verify("stored", capped) is True
