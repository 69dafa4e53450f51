"""Users, organizations, memberships and password hashing: who exists and who belongs where."""

from __future__ import annotations

from gateway.accounts.errors import InvalidEmail
from gateway.accounts.memberships import add_membership, get_membership
from gateway.accounts.organizations import create_organization
from gateway.accounts.passwords import MAX_PASSWORD_BYTES, PasswordHashing
from gateway.accounts.users import create_user, get_user_by_email, normalize_email, set_user_status

__all__ = [
    "MAX_PASSWORD_BYTES",
    "InvalidEmail",
    "PasswordHashing",
    "add_membership",
    "create_organization",
    "create_user",
    "get_membership",
    "get_user_by_email",
    "normalize_email",
    "set_user_status",
]
