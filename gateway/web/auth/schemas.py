"""The /auth request and answer bodies (msgspec structs; their fields are the documented API)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from gateway.store import ID_MAX

PublicId = Annotated[int, Meta(ge=1, le=ID_MAX)]
TOKEN_TYPE = "bearer"  # noqa: S105 - RFC 6750 token type, not a secret


# Requests. Unknown fields are refused (400) rather than ignored: a typo such as "organisation_id"
# must not silently sign the user into another organization.
class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(min_length=1, max_length=320, pattern=r"^[^\x00-\x1f\x7f]+$")]
    password: Annotated[str, Meta(min_length=1, max_length=1024)]
    organization_id: PublicId | None = None
    cookie: bool = False


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=128)] | None = None


class LogoutRequest(msgspec.Struct, forbid_unknown_fields=True):
    scope: Literal["local", "global"] = "local"


class SwitchOrganizationRequest(msgspec.Struct, forbid_unknown_fields=True):
    organization_id: PublicId
    # Required unless the refresh cookie is sent (then with X-CSRF-Token).
    refresh_token: Annotated[str, Meta(min_length=1, max_length=128)] | None = None


# Answers.
class TokenUser(msgspec.Struct):
    user_id: int
    email: str
    status: str
    role: str | None
    organization_id: int | None


class TokenOrganization(msgspec.Struct):
    org_name: str
    organization_id: int


class TokenResponse(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
    expires_at: int
    refresh_token: str
    user: TokenUser
    organization: TokenOrganization | None


class CookieTokenResponse(msgspec.Struct):
    """Cookie mode: the tokens are in HttpOnly cookies; the page keeps only the CSRF token."""

    token_type: str
    expires_in: int
    expires_at: int
    csrf_token: str
    user: TokenUser
    organization: TokenOrganization | None


class MeUser(msgspec.Struct):
    user_id: int
    email: str
    status: str
    db_role: str
    created_at: str
    email_verified: bool
    #: When the address was proven (ISO 8601), or null.
    email_verified_at: str | None


class MeMembership(msgspec.Struct):
    organization_id: int
    org_name: str
    role: str


class MeSession(msgspec.Struct):
    id: str
    created_at: str
    expires_at: str


class MeResponse(msgspec.Struct):
    user: MeUser
    memberships: list[MeMembership]
    organization: MeMembership | None
    session: MeSession


class ErrorBody(msgspec.Struct):
    code: str
    message: str
