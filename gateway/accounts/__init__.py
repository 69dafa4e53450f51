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
from gateway.accounts.passwords import MAX_PASSWORD_BYTES, PasswordHashing
from gateway.accounts.signup import sign_up, signup_refusal
from gateway.accounts.users import (
    create_user,
    get_user_by_email,
    list_users,
    normalize_email,
    set_user_status,
)
from gateway.accounts.verification import mark_email_verified, resend_verification, verify_email

__all__ = [
    "MAX_PASSWORD_BYTES",
    "InvalidEmail",
    "LinkTokenRefused",
    "PasswordHashing",
    "add_membership",
    "create_organization",
    "create_user",
    "get_user_by_email",
    "issue_link_token",
    "list_users",
    "looks_like_link_token",
    "mark_email_verified",
    "normalize_email",
    "resend_verification",
    "revoke_link_tokens",
    "set_user_status",
    "sign_up",
    "signup_refusal",
    "spend_link_token",
    "verify_email",
]
