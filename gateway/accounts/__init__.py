"""Users, organizations, memberships, passwords and link tokens: who exists, who belongs where."""

from __future__ import annotations

from gateway.accounts.errors import InvalidEmail, LinkTokenRefused
from gateway.accounts.link_tokens import (
    issue_link_token,
    looks_like_link_token,
    revoke_link_tokens,
    spend_link_token,
)
from gateway.accounts.memberships import add_membership
from gateway.accounts.organizations import create_organization
from gateway.accounts.password_reset import (
    PasswordSet,
    replace_password,
    request_password_reset,
    reset_password,
    set_password,
)
from gateway.accounts.passwords import MAX_PASSWORD_BYTES, PasswordHashing, check_password_policy
from gateway.accounts.users import create_user, get_user_by_email, normalize_email, set_user_status

__all__ = [
    "MAX_PASSWORD_BYTES",
    "InvalidEmail",
    "LinkTokenRefused",
    "PasswordHashing",
    "PasswordSet",
    "add_membership",
    "check_password_policy",
    "create_organization",
    "create_user",
    "get_user_by_email",
    "issue_link_token",
    "looks_like_link_token",
    "normalize_email",
    "replace_password",
    "request_password_reset",
    "reset_password",
    "revoke_link_tokens",
    "set_password",
    "set_user_status",
    "spend_link_token",
]
