"""Users, organizations, memberships, passwords and link tokens: who exists, who belongs where."""

from __future__ import annotations

from gateway.accounts.admin_keys import (
    ADMIN_SCOPES,
    AdminScopeMissing,
    InvalidAdminKey,
    authorize_admin_key,
    create_admin_key,
    list_admin_keys,
    revoke_admin_key,
)
from gateway.accounts.deletion import LastAdminOfOrganization, delete_user
from gateway.accounts.directory import search_organizations, search_users
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
from gateway.accounts.users import (
    create_user,
    get_user_by_email,
    get_user_by_id,
    normalize_email,
    set_user_status,
)

__all__ = [
    "ADMIN_SCOPES",
    "MAX_PASSWORD_BYTES",
    "AdminScopeMissing",
    "InvalidAdminKey",
    "InvalidEmail",
    "LastAdminOfOrganization",
    "LinkTokenRefused",
    "PasswordHashing",
    "add_membership",
    "authorize_admin_key",
    "create_admin_key",
    "create_organization",
    "create_user",
    "delete_user",
    "get_user_by_email",
    "get_user_by_id",
    "issue_link_token",
    "list_admin_keys",
    "looks_like_link_token",
    "normalize_email",
    "revoke_admin_key",
    "revoke_link_tokens",
    "search_organizations",
    "search_users",
    "set_user_status",
    "spend_link_token",
]
