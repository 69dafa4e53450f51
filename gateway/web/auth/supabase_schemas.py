"""The /auth/v1 bodies, in GoTrue's shapes (msgspec structs; supabase-js is the judge).

Unlike /auth, unknown request fields are ignored, as GoTrue ignores them: supabase-js adds
fields from release to release (``gotrue_meta_security``, ``code_challenge``), and none of
these bodies has a field whose misspelling could send anyone somewhere else.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from gateway.web.auth.password_schemas import Email, Password

RefreshTokenText = Annotated[str, Meta(min_length=1, max_length=128)]
# What the gateway never reads but accepts, bounded like everything it parses.
Opaque = Annotated[str, Meta(max_length=1024)]


class MetaSecurity(msgspec.Struct):
    """supabase-js sends ``{"captcha_token": ...}``; the gateway runs no CAPTCHA (docs)."""

    captcha_token: Opaque | None = None


class TokenRequest(msgspec.Struct):
    """``POST /auth/v1/token``: ``email`` and ``password`` for ``grant_type=password``,
    ``refresh_token`` for ``grant_type=refresh_token``."""

    email: Email | None = None
    phone: Opaque | None = None
    password: Password | None = None
    refresh_token: RefreshTokenText | None = None
    gotrue_meta_security: MetaSecurity | None = None


class SignupRequest(msgspec.Struct):
    email: Email | None = None
    phone: Opaque | None = None
    password: Password | None = None
    #: GoTrue's user_metadata: refused unless empty (the gateway keeps none).
    data: dict[str, Any] | None = None
    gotrue_meta_security: MetaSecurity | None = None
    code_challenge: Opaque | None = None
    code_challenge_method: Opaque | None = None


class RecoverRequest(msgspec.Struct):
    email: Email
    gotrue_meta_security: MetaSecurity | None = None
    code_challenge: Opaque | None = None
    code_challenge_method: Opaque | None = None


class UpdateUserRequest(msgspec.Struct):
    """``PUT /auth/v1/user``: a password change, with the current password."""

    password: Password | None = None
    current_password: Password | None = None
    email: Opaque | None = None
    phone: Opaque | None = None
    data: dict[str, Any] | None = None
    nonce: Opaque | None = None
    code_challenge: Opaque | None = None
    code_challenge_method: Opaque | None = None


class Identity(msgspec.Struct):
    id: str
    user_id: str
    identity_id: str
    provider: str
    identity_data: dict[str, Any]
    created_at: str
    updated_at: str
    last_sign_in_at: str | None


class User(msgspec.Struct):
    """GoTrue's user object; ``id`` is the gateway's user id as a string (the token's ``sub``)
    and ``app_metadata`` carries the organization the session acts in and the memberships."""

    id: str
    aud: str
    role: str
    email: str
    email_confirmed_at: str | None
    phone: str
    confirmed_at: str | None
    last_sign_in_at: str | None
    app_metadata: dict[str, Any]
    user_metadata: dict[str, Any]
    identities: list[Identity]
    created_at: str
    updated_at: str
    is_anonymous: bool


class Session(msgspec.Struct):
    """GoTrue's token answer (``AccessTokenResponse``): the tokens are the gateway's own."""

    access_token: str
    token_type: str
    expires_in: int
    expires_at: int
    refresh_token: str
    user: User


class SignupUser(msgspec.Struct):
    """The answer to every accepted sign-up, new address or known: it cannot tell them apart,
    so it names no user id and leaves ``identities`` out (supabase-js apps read an empty list
    as "already registered"). No session: sign in once the account exists."""

    id: str
    aud: str
    role: str
    email: str
    phone: str
    confirmation_sent_at: str
    app_metadata: dict[str, Any]
    user_metadata: dict[str, Any]
    created_at: str
    updated_at: str
    is_anonymous: bool


class Empty(msgspec.Struct):
    """``POST /auth/v1/recover`` answers ``{}`` whether or not the address has an account."""


class External(msgspec.Struct):
    email: bool
    phone: bool
    anonymous_users: bool


class AuthSettings(msgspec.Struct):
    external: External
    disable_signup: bool
    mailer_autoconfirm: bool
    phone_autoconfirm: bool
    sms_provider: str
    saml_enabled: bool


class WeakPasswordDetail(msgspec.Struct):
    message: str
    reasons: list[str]


class GoTrueError(msgspec.Struct):
    """GoTrue's error body: the status again as ``code``, a snake_case ``error_code``, ``msg``."""

    code: int
    error_code: str
    msg: str
    weak_password: WeakPasswordDetail | None = None
