"""The per-client-address request limit on /auth and /storage (behind the per-account lockout)."""

from __future__ import annotations

from typing import Any, cast

from litestar import Request
from litestar.middleware.rate_limit import RateLimitConfig

from gateway.asgi import Scope, client_address_of, parse_networks


def auth_rate_limit(settings: Any) -> RateLimitConfig:
    """Per-client-address limit on /auth/* (a second line behind the per-account lockout) and
    /storage/* (each call verifies a session in the store and may sign a batch of URLs)."""
    networks = parse_networks(tuple(settings.trusted_proxies))

    def identify(request: Request[Any, Any, Any]) -> str:
        address = client_address_of(cast(Scope, request.scope), networks)
        return address or "unknown"

    def throttled(request: Request[Any, Any, Any]) -> bool:
        return request.url.path.startswith(("/auth/", "/storage/"))

    return RateLimitConfig(
        rate_limit=("minute", settings.auth_rate_limit),
        identifier_for_request=identify,
        check_throttle_handler=throttled,
        store="auth_rate_limit",
    )
