"""The per-client-address request limit on /auth and /storage (behind the per-account lockout)."""

from __future__ import annotations

from typing import Any, cast

from litestar import Request
from litestar.middleware.rate_limit import RateLimitConfig

from gateway.asgi import Scope, client_address_of, parse_networks


def auth_rate_limit(settings: Any) -> RateLimitConfig:
    """Per-client-address limit on /auth/*, /storage/* (each call verifies a session in the store
    and may sign a batch of URLs) and /admin/* (a bucket of its own), behind the lockout."""
    networks = parse_networks(tuple(settings.trusted_proxies))

    def identify(request: Request[Any, Any, Any]) -> str:
        address = client_address_of(cast(Scope, request.scope), networks) or "unknown"
        # One bucket per address and area: an admin tool paging through users must not use up
        # the sign-in budget of everyone behind the same address, nor sign-ins the admin's.
        area = "admin" if request.url.path.startswith("/admin/") else "auth"
        return f"{area}:{address}"

    def throttled(request: Request[Any, Any, Any]) -> bool:
        return request.url.path.startswith(("/auth/", "/storage/", "/admin/"))

    return RateLimitConfig(
        rate_limit=("minute", settings.auth_rate_limit),
        identifier_for_request=identify,
        check_throttle_handler=throttled,
        store="auth_rate_limit",
    )
