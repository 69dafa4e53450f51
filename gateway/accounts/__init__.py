"""Users, organizations, memberships, passwords and link tokens: who exists, who belongs where."""

from __future__ import annotations

from gateway.accounts.admin_keys import (
    ADMIN_SCOPES,
    AdminScopeMissing,
    InvalidAdminKey,
    authorize_admin_key,
    create_admin_key,
    list_admin_keys,
    note_admin_key_use,
    revoke_admin_key,
)
from gateway.accounts.deletion import delete_user
from gateway.accounts.directory import search_organizations, search_users
from gateway.accounts.errors import (
    InvalidCursor,
    InvalidEmail,
    LastOrgAdmin,
    LinkTokenRefused,
    NotAnOrgAdmin,
    SignupClosed,
)
from gateway.accounts.invitations import (
    InvitationView,
    SentInvitation,
    invite,
    list_invitations,
    revoke_invitation,
)
from gateway.accounts.link_tokens import (
    issue_link_token,
    looks_like_link_token,
    revoke_link_tokens,
    spend_link_token,
)
from gateway.accounts.members import (
    MAX_PAGE,
    MemberPage,
    MemberView,
    leave_organization,
    list_members,
    remove_member,
    set_member_role,
)
from gateway.accounts.memberships import add_membership, get_membership
from gateway.accounts.org_admin import (
    OrganizationView,
    create_own_organization,
    list_organizations,
    rename_organization,
)
from gateway.accounts.organizations import create_organization
from gateway.accounts.password_reset import (
    PasswordSet,
    replace_password,
    request_password_reset,
    reset_password,
    set_password,
)
from gateway.accounts.passwords import MAX_PASSWORD_BYTES, PasswordHashing, check_password_policy
from gateway.accounts.signup import sign_up, signup_refusal
from gateway.accounts.users import (
    create_user,
    get_user_by_email,
    get_user_by_id,
    list_users,
    normalize_email,
    set_user_status,
)
from gateway.accounts.verification import mark_email_verified, resend_verification, verify_email

__all__ = [
    "ADMIN_SCOPES",
    "MAX_PAGE",
    "MAX_PASSWORD_BYTES",
    "AdminScopeMissing",
    "InvalidAdminKey",
    "InvalidCursor",
    "InvalidEmail",
    "InvitationView",
    "LastOrgAdmin",
    "LinkTokenRefused",
    "MemberPage",
    "MemberView",
    "NotAnOrgAdmin",
    "OrganizationView",
    "PasswordHashing",
    "PasswordSet",
    "SentInvitation",
    "SignupClosed",
    "add_membership",
    "authorize_admin_key",
    "check_password_policy",
    "create_admin_key",
    "create_organization",
    "create_own_organization",
    "create_user",
    "delete_user",
    "get_membership",
    "get_user_by_email",
    "get_user_by_id",
    "invite",
    "issue_link_token",
    "leave_organization",
    "list_admin_keys",
    "list_invitations",
    "list_members",
    "list_organizations",
    "list_users",
    "looks_like_link_token",
    "mark_email_verified",
    "normalize_email",
    "note_admin_key_use",
    "remove_member",
    "rename_organization",
    "replace_password",
    "request_password_reset",
    "resend_verification",
    "reset_password",
    "revoke_admin_key",
    "revoke_invitation",
    "revoke_link_tokens",
    "search_organizations",
    "search_users",
    "set_member_role",
    "set_password",
    "set_user_status",
    "sign_up",
    "signup_refusal",
    "spend_link_token",
    "verify_email",
]
