"""The bodies of sign-up and email verification (msgspec structs; their fields are the API)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

# As in LoginRequest: no control characters in an email, and unknown fields refused.
Email = Annotated[str, Meta(min_length=1, max_length=320, pattern=r"^[^\x00-\x1f\x7f]+$")]


class SignupRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    # Characters here; the policy (GATEWAY_PASSWORD_MIN_LENGTH, 1024 UTF-8 bytes) is checked by
    # the sign-up itself, as by `gateway users create`.
    password: Annotated[str, Meta(min_length=1, max_length=1024)]
    organization_name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class VerifyEmailRequest(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=1, max_length=128)]


class SignupAccepted(msgspec.Struct):
    """The one answer to every sign-up that is not refused: it says nothing of the address."""

    message: str
