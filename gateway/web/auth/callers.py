"""Who is calling /auth: the client address and the credentials, read as the mount reads them."""

from __future__ import annotations

from typing import Any, cast

from litestar import Request

from gateway.asgi import Scope, client_address_of, parse_networks
from gateway.sessions import (
    CSRF_HEADER,
    ClientInfo,
    MissingCredentials,
    Presented,
    access_token,
    bearer_token,
    check_csrf,
    cookie,
    cookie_names,
    read_credentials,
)
from gateway.web.runtime import Runtime


def client_of(request: Request[Any, Any, Any], runtime: Runtime) -> ClientInfo:
    networks = parse_networks(tuple(runtime.settings.trusted_proxies))
    ip = client_address_of(cast(Scope, request.scope), networks)
    return ClientInfo(ip=ip, user_agent=request.headers.get("user-agent"))


def credentials_of(request: Request[Any, Any, Any], runtime: Runtime) -> Presented:
    """The request's credentials, read by the parser the /rest mount uses too."""
    names = cookie_names(runtime.settings)
    return read_credentials(request.scope["headers"], names.encoded, CSRF_HEADER.encode())


def access_credentials(presented: Presented, runtime: Runtime) -> tuple[str, bool]:
    """The access token and whether it came from the cookie (which then needs a CSRF check)."""
    found = access_token(presented, cookie_names(runtime.settings).access.encode())
    if found is None:
        raise MissingCredentials("Send an access token: Authorization: Bearer <token>.")
    return found


def bearer_credentials(request: Request[Any, Any, Any], runtime: Runtime) -> str:
    """The bearer token only, for /auth/v1: supabase-js never sends cookies, so the access
    cookie is never read there and a browser's ambient cookie is no credential (no CSRF surface).
    """
    found = bearer_token(credentials_of(request, runtime))
    if found is None:
        raise MissingCredentials("Send an access token: Authorization: Bearer <token>.")
    return found


def refresh_cookie(presented: Presented, runtime: Runtime) -> str | None:
    return cookie(presented, cookie_names(runtime.settings).refresh.encode())


def require_csrf(presented: Presented, runtime: Runtime) -> None:
    check_csrf(presented, cookie_names(runtime.settings).csrf.encode())
