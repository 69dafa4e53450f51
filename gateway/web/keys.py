"""Public key discovery: the JWKS and the OpenID-style configuration document."""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from gateway.web.runtime import RuntimeDep

JWKS_PATH = "/.well-known/jwks.json"


@get(JWKS_PATH, tags=["keys"], summary="Public keys that verify the gateway's tokens")
async def jwks(runtime: RuntimeDep) -> Response[bytes]:
    """The next, current and retiring public keys; no private member is ever included.

    Clients may cache it for GATEWAY_JWKS_MAX_AGE seconds. A key is published as ``next`` for at
    least twice that long before it signs (``gateway keys rotate`` refuses sooner), so a client
    with a cached copy already holds the key of any token it is shown.
    """
    return Response(
        runtime.keys.ring.jwks_json,
        media_type="application/json",
        headers={"Cache-Control": f"public, max-age={runtime.settings.jwks_max_age}"},
    )


@get(
    "/.well-known/openid-configuration",
    tags=["keys"],
    summary="Issuer, JWKS location, endpoints and algorithms",
)
async def openid_configuration(runtime: RuntimeDep) -> dict[str, Any]:
    issuer = runtime.settings.issuer
    algorithms = list(runtime.keys.ring.algorithms)
    return {
        "issuer": issuer,
        "jwks_uri": issuer + JWKS_PATH,
        "login_endpoint": issuer + "/auth/login",
        "token_endpoint": issuer + "/auth/refresh",
        "revocation_endpoint": issuer + "/auth/logout",
        "switch_organization_endpoint": issuer + "/auth/switch-organization",
        "userinfo_endpoint": issuer + "/auth/me",
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algorithms,
        "token_endpoint_auth_methods_supported": ["none"],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "iat",
            "exp",
            "jti",
            "sid",
            "role",
            "token_type",
            "user",
            "organization",
        ],
    }
