"""The /auth endpoints: sign-in, refresh, logout, organization switch, the caller's view."""

from __future__ import annotations

from gateway.web.auth.controller import AuthController
from gateway.web.auth.passwords import PasswordController
from gateway.web.auth.rate_limit import auth_rate_limit

__all__ = ["AuthController", "PasswordController", "auth_rate_limit"]
