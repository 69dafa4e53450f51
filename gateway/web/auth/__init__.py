"""The /auth endpoints (sign-in, refresh, logout, switching, sign-up...) and /auth/v1."""

from __future__ import annotations

from gateway.web.auth.controller import AuthController
from gateway.web.auth.organizations import OrganizationsController
from gateway.web.auth.passwords import PasswordController
from gateway.web.auth.rate_limit import auth_rate_limit
from gateway.web.auth.signup import SignupController
from gateway.web.auth.supabase import SupabaseAuthController

__all__ = [
    "AuthController",
    "OrganizationsController",
    "PasswordController",
    "SignupController",
    "SupabaseAuthController",
    "auth_rate_limit",
]
