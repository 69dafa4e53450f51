"""The mails the gateway sends: one kind per account action, and what each one carries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

MailKind = Literal[
    "verify_email",
    "password_reset",
    "invitation",
    "signup_attempt_on_existing_account",
]


@dataclass(frozen=True)
class KindRules:
    """Where a kind's link leads (a page under GATEWAY_LINK_BASE_URL) and whether it has a token."""

    page: str
    needs_token: bool


KINDS: Final[dict[MailKind, KindRules]] = {
    "verify_email": KindRules(page="verify-email", needs_token=True),
    "password_reset": KindRules(page="reset-password", needs_token=True),
    "invitation": KindRules(page="accept-invitation", needs_token=True),
    # Sent instead of a verification mail when someone signs up with an address that already
    # has an account: the sign-up answer stays the same (no enumeration), the owner learns of
    # it, and the link leads to where they can reset their password if it was them.
    "signup_attempt_on_existing_account": KindRules(page="forgot-password", needs_token=False),
}


@dataclass(frozen=True, kw_only=True)
class MailMessage:
    """One mail to send: its kind, its recipient, and what its templates show.

    ``token`` is the plaintext link token (from ``accounts.issue_link_token``), required for
    every kind but ``signup_attempt_on_existing_account``; it is kept out of ``repr`` so a log
    line or a traceback never shows it. ``expires_in`` (seconds) is shown as "24 hours";
    ``organization_name`` is shown by the invitation.
    """

    kind: MailKind
    to: str
    token: str | None = field(default=None, repr=False)
    expires_in: int | None = None
    organization_name: str | None = None

    def __post_init__(self) -> None:
        rules = KINDS.get(self.kind)
        if rules is None:
            raise ValueError(f"unknown mail kind {self.kind!r}")
        if rules.needs_token != (self.token is not None):
            needs = "needs" if rules.needs_token else "takes no"
            raise ValueError(f"a {self.kind} mail {needs} token")


def describe_duration(seconds: int) -> str:
    """A lifetime in words for a mail: the largest unit that divides it ("24 hours", "7 days")."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"
