"""Each package's public surface is its __init__: pinned here, so it cannot drift silently.

Adding a name to a package's ``__all__`` is a decision about the package's API; this test makes
it a visible one. Code in another package reaches a package only through that surface (its
root), never a module inside it, so the modules stay the package's own to rearrange.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

GATEWAY = Path(__file__).resolve().parents[2] / "gateway"

PUBLIC = {
    "accounts": [
        "ADMIN_SCOPES",
        "AdminScopeMissing",
        "InvalidAdminKey",
        "InvalidCursor",
        "InvalidEmail",
        "InvitationView",
        "LastOrgAdmin",
        "LinkTokenRefused",
        "MAX_PAGE",
        "MAX_PASSWORD_BYTES",
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
    ],
    "asgi": [
        "ASGIApp",
        "Header",
        "Message",
        "Receive",
        "Scope",
        "Send",
        "client_address_of",
        "is_trusted",
        "parse_networks",
        "raw_path_of",
        "request_id_of",
        "started_answer",
    ],
    "cli": [
        "cli",
        "main",
    ],
    "devstack": [
        "DEV_ROLE_MARK",
        "DevStackError",
        "DevStackOptions",
        "POSTGREST_VERSION",
        "PostgRESTMissing",
        "find_postgrest",
        "foreign_roles",
        "run_dev_stack",
        "user_cache_binary",
    ],
    "mail": [
        "KINDS",
        "KindRules",
        "MailKind",
        "MailMessage",
        "MailNotConfigured",
        "MailTemplatesError",
        "MailUnavailable",
        "Mailer",
        "Outbox",
        "build_link",
        "describe_duration",
    ],
    "metrics": [
        "CONTENT_TYPE",
        "DerivedFamilies",
        "METHODS",
        "MULTIPROC_ENV",
        "Metrics",
        "MetricsListener",
        "ROUTE_GROUPS",
        "RequestCounter",
        "SIGN_IN_OUTCOMES",
        "age_family",
        "fresh_multiprocess_dir",
        "metrics",
        "scrape",
    ],
    "postgrest": [
        "BootstrapPlan",
        "BootstrapRefused",
        "JWKSRefused",
        "apply_bootstrap",
        "as_json",
        "explain_token",
        "notify_postgrest",
        "postgrest_database_url",
        "publish_jwks",
        "published_jwks",
        "run_doctor",
    ],
    "proxy": [
        "MountDependencies",
        "PostgrestMount",
        "SUPABASE_REST_PREFIX",
        "VerifiedTokens",
        "json_error",
        "make_client_session",
        "merge_vary",
        "mount_prefix",
        "under_prefix",
    ],
    "revocation": [
        "Revocations",
        "announce_revocation",
        "announce_user_standing",
        "revoke_organization_sessions",
        "revoke_replacements",
        "revoke_session",
        "revoke_user_sessions",
    ],
    "sessions": [
        "CSRF_HEADER",
        "ClientInfo",
        "CookieNames",
        "IssuedTokens",
        "MissingCredentials",
        "PasswordCheck",
        "Presented",
        "RefreshTokenRequired",
        "SessionExpired",
        "SessionRevoked",
        "TokenIssuer",
        "UserSuspended",
        "accept_invitation",
        "access_token",
        "authenticate",
        "bearer_token",
        "change_password",
        "check_csrf",
        "cookie",
        "cookie_names",
        "describe_token_holder",
        "login",
        "logout_by_refresh_token",
        "logout_caller",
        "needs_csrf",
        "read_credentials",
        "refresh",
        "switch_organization",
    ],
    "storage": [
        "Bucket",
        "BucketSigner",
        "Credentials",
        "Enrichment",
        "Grantee",
        "MAX_EXPIRES",
        "PresignedUrl",
        "StorageCheck",
        "StorageConfig",
        "StorageConfigError",
        "StorageNotConfigured",
        "check_keys",
        "check_storage",
        "checks_as_json",
        "enrich",
        "enrichment_for",
        "key_problem",
        "load_storage_config",
        "presign",
        "signable_within",
        "signing_key",
    ],
    "store": [
        "AdminKey",
        "AuthEvent",
        "ID_MAX",
        "KEY_STATES",
        "KeystoreState",
        "LINK_PURPOSES",
        "LinkToken",
        "LoginKnownAddress",
        "LoginThrottle",
        "Membership",
        "ORG_ROLES",
        "Organization",
        "RefreshToken",
        "ServerSecret",
        "Session",
        "SigningKey",
        "USER_STATUSES",
        "UTCDateTime",
        "User",
        "asyncpg_dsn",
        "describe_url",
        "fresh_id",
        "is_up_to_date",
        "make_engine",
        "make_sessionmaker",
        "migrate_store",
        "open_store",
        "ping_store",
        "record_event",
        "utcnow",
    ],
    "tokens": [
        "AnonKeyRetired",
        "Identity",
        "InvalidToken",
        "JWKSDocument",
        "JWKS_NAME",
        "KeyPassphraseError",
        "KeyRecord",
        "KeyRing",
        "KeyRingHolder",
        "KeyState",
        "Keystore",
        "KeystoreBusy",
        "KeystoreCorrupt",
        "KeystoreError",
        "KeystoreMissing",
        "KeystoreUnreadable",
        "KeystoreUnwritable",
        "LEEWAY_SECONDS",
        "Manifest",
        "RotationRefused",
        "SUPPORTED_ALGORITHMS",
        "SigningAlgorithm",
        "StoredKey",
        "build_access_claims",
        "ensure_keystore",
        "export_jwks",
        "format_time",
        "in_database",
        "is_anon_key",
        "jwk_thumbprint",
        "keys_directory",
        "load_keyring",
        "load_keystore",
        "migrate_to_database",
        "prune_keys",
        "read_manifest",
        "render_jwks",
        "rotate_keys",
        "sign_access_token",
        "sign_anon_key",
        "verify_access_token",
        "verify_bearer_token",
    ],
    "upstream": [
        "UnsendableRequest",
        "UpstreamAddress",
        "UpstreamAnswer",
        "UpstreamClient",
        "UpstreamClosed",
        "UpstreamError",
        "UpstreamProtocolError",
        "UpstreamUnreachable",
        "make_upstream_client",
    ],
    "web": [
        "configure_logging",
        "create_app",
        "create_app_from_env",
        "create_server_app",
        "granian_log_config",
        "key_families",
        "load_storage",
    ],
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_the_public_names_of_a_package_are_the_pinned_ones(package: str) -> None:
    module = importlib.import_module(f"gateway.{package}")
    assert sorted(module.__all__) == PUBLIC[package]
    for name in module.__all__:
        assert hasattr(module, name), f"gateway.{package}.__all__ names {name}, which it lacks"


def test_every_package_has_its_surface_pinned() -> None:
    packages = {init.parent.name for init in GATEWAY.glob("*/__init__.py")}
    assert packages == set(PUBLIC)


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_a_package_imports_on_its_own(package: str) -> None:
    # A fresh interpreter: an import cycle hidden by the order other tests import things in
    # shows up here as an ImportError.
    subprocess.run([sys.executable, "-c", f"import gateway.{package}"], check=True)


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "gateway" or parts[1] not in PUBLIC:
        return None
    return parts[1]


def test_packages_reach_each_other_only_through_their_root() -> None:
    reaches_inside: list[str] = []
    for path in GATEWAY.rglob("*.py"):
        relative = path.relative_to(GATEWAY.parent).with_suffix("")
        own = _package_of(".".join(relative.parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                target = _package_of(node.module)
                if target and target != own and node.module != f"gateway.{target}":
                    reaches_inside.append(f"{relative}: from {node.module} import ...")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    target = _package_of(alias.name)
                    if target and target != own and alias.name != f"gateway.{target}":
                        reaches_inside.append(f"{relative}: import {alias.name}")
    assert reaches_inside == []


def test_private_modules_are_imported_only_inside_their_package() -> None:
    outside: list[str] = []
    for path in GATEWAY.rglob("*.py"):
        relative = path.relative_to(GATEWAY.parent).with_suffix("")
        own = _package_of(".".join(relative.parts))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                private = any(part.startswith("_") for part in node.module.split(".")[2:])
                if private and _package_of(node.module) != own:
                    outside.append(f"{relative}: {node.module}")
    assert outside == []


# The web layer and the CLI are the top: their modules are entry points, not a surface.
_DOMAIN = sorted(set(PUBLIC) - {"web", "cli"})


@pytest.mark.parametrize("package", _DOMAIN)
def test_a_module_with_nothing_public_is_private_by_name(package: str) -> None:
    init = ast.parse((GATEWAY / package / "__init__.py").read_text())
    surfaced = {
        node.module.rsplit(".", 1)[1]
        for node in ast.walk(init)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gateway.")
    }
    modules = {path.stem for path in (GATEWAY / package).glob("*.py")} - {"__init__"}
    public_by_name = {name for name in modules if not name.startswith("_")}
    assert public_by_name - surfaced == set()
