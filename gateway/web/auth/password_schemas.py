"""The request and answer bodies of the password endpoints (forgot, reset, change)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

# As LoginRequest's: no control characters, at most what an address can be (RFC 5321).
Email = Annotated[str, Meta(min_length=1, max_length=320, pattern=r"^[^\x00-\x1f\x7f]+$")]
# Longer than MAX_PASSWORD_BYTES can never be valid; the policy gives the precise refusal.
Password = Annotated[str, Meta(min_length=1, max_length=1024)]
LinkTokenText = Annotated[str, Meta(min_length=1, max_length=128)]


class ForgotPasswordRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email


class ResetPasswordRequest(msgspec.Struct, forbid_unknown_fields=True):
    token: LinkTokenText
    password: Password


class ChangePasswordRequest(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Password
    new_password: Password


class ForgotPasswordAnswer(msgspec.Struct):
    """The same for every address, with or without an account."""

    message: str
