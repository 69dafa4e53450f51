"""The per-client-address request limit on /auth (a second line behind the per-account lockout)."""

from __future__ import annotations

from typing import Any, cast

from litestar import Request
from litestar.middleware.rate_limit import RateLimitConfig

from gateway.asgi import Scope, client_address_of, parse_networks


def auth_rate_limit(settings: Any) -> RateLimitConfig:
    """Per-client-address limit on /auth/* and /admin/* (behind the per-account lockout)."""
    networks = parse_networks(tuple(settings.trusted_proxies))

    def identify(request: Request[Any, Any, Any]) -> str:
        address = client_address_of(cast(Scope, request.scope), networks) or "unknown"
        # One bucket per address and area: an admin tool paging through users must not use up
        # the sign-in budget of everyone behind the same address, nor sign-ins the admin's.
        area = "admin" if request.url.path.startswith("/admin/") else "auth"
        return f"{area}:{address}"

    def only_auth(request: Request[Any, Any, Any]) -> bool:
        return request.url.path.startswith(("/auth/", "/admin/"))

    return RateLimitConfig(
        rate_limit=("minute", settings.auth_rate_limit),
        identifier_for_request=identify,
        check_throttle_handler=only_auth,
        store="auth_rate_limit",
    )
