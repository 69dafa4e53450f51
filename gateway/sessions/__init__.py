"""Signing in, refreshing, switching organization, signing out, throttling; credential reading."""

from __future__ import annotations

from gateway.sessions.cookies import CSRF_HEADER, CookieNames, cookie_names
from gateway.sessions.credentials import (
    Presented,
    access_token,
    bearer_token,
    check_csrf,
    cookie,
    needs_csrf,
    read_credentials,
)
from gateway.sessions.current import authenticate, describe_token_holder
from gateway.sessions.errors import (
    MissingCredentials,
    RefreshTokenRequired,
    SessionExpired,
    SessionRevoked,
    UserSuspended,
)
from gateway.sessions.invitations import accept_invitation
from gateway.sessions.issuing import ClientInfo, IssuedTokens, TokenIssuer
from gateway.sessions.login import PasswordCheck, login
from gateway.sessions.logout import logout_by_refresh_token, logout_caller
from gateway.sessions.password_change import change_password
from gateway.sessions.refresh import refresh
from gateway.sessions.switching import switch_organization

__all__ = [
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
]
