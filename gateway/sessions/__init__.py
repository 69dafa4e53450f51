"""Signing in, refreshing, switching organization, signing out, throttling; credential reading."""

from __future__ import annotations

from gateway.sessions.cookies import CSRF_HEADER, CookieNames, cookie_names
from gateway.sessions.credentials import (
    Presented,
    access_token,
    check_csrf,
    cookie,
    needs_csrf,
    read_credentials,
)
from gateway.sessions.current import authenticate, describe_caller
from gateway.sessions.errors import (
    MissingCredentials,
    RefreshTokenRequired,
    SessionRevoked,
    UserSuspended,
)
from gateway.sessions.issuing import ClientInfo, IssuedTokens, TokenIssuer
from gateway.sessions.login import PasswordCheck, login
from gateway.sessions.logout import logout, session_of_refresh_token
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
    "SessionRevoked",
    "TokenIssuer",
    "UserSuspended",
    "access_token",
    "authenticate",
    "check_csrf",
    "cookie",
    "cookie_names",
    "describe_caller",
    "login",
    "logout",
    "needs_csrf",
    "read_credentials",
    "refresh",
    "session_of_refresh_token",
    "switch_organization",
]
