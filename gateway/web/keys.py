"""Public key discovery: the JWKS and the issuer's metadata document.

The gateway issues JWT access tokens; it is neither an OpenID Provider (no ID tokens, no
authorization endpoint) nor an OAuth 2.0 authorization server (no RFC 6749 token endpoint: its
endpoints take JSON, not form-encoded grants). The metadata document therefore carries only the
registered fields that are true of it (``issuer``, ``jwks_uri``, and empty
``response_types_supported`` and ``grant_types_supported``, because leaving the latter out means
``authorization_code`` and ``implicit`` by default in RFC 8414 and OpenID Connect Discovery), and
says the rest under names no generic client reads. A generic OIDC or OAuth client therefore stops
at discovery instead of sending a form-encoded grant to ``/auth/refresh``; a JWT verifier reads
``issuer`` and ``jwks_uri`` and works (docs/keys.md, "What a verifier reads").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from litestar import Response, get

from gateway.web.runtime import RuntimeDep

JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"


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


def discovery_document(
    issuer: str, algorithms: Iterable[str], audience: str | None
) -> dict[str, Any]:
    """The metadata document: what a verifier needs, and nothing a generic client would misuse.

    Args:
        issuer: ``GATEWAY_ISSUER``, the ``iss`` of every token and the base of every URL here.
        algorithms: the ``alg`` of the published keys.
        audience: ``GATEWAY_AUDIENCE``, the ``aud`` of every token, or None when unset (then
            tokens carry no ``aud``).
    """
    document: dict[str, Any] = {
        "issuer": issuer,
        "jwks_uri": issuer + JWKS_PATH,
        # No OAuth 2.0 flow is offered; said outright, since an absent list has a default.
        "response_types_supported": [],
        "grant_types_supported": [],
        # Not registered names, so no generic client takes them for OAuth or OIDC endpoints.
        "access_token_signing_alg_values_supported": sorted(algorithms),
        "access_token_audience": audience,
        "login_endpoint": issuer + "/auth/login",
        "refresh_endpoint": issuer + "/auth/refresh",
        "logout_endpoint": issuer + "/auth/logout",
        "switch_organization_endpoint": issuer + "/auth/switch-organization",
        "me_endpoint": issuer + "/auth/me",
    }
    return document


@get(DISCOVERY_PATH, tags=["keys"], summary="Issuer, JWKS location, algorithms and endpoints")
async def openid_configuration(runtime: RuntimeDep) -> dict[str, Any]:
    """The issuer's metadata: ``issuer`` and ``jwks_uri`` for verifiers; no ID-token fields.

    Served at the OpenID Connect Discovery path because JWT verifiers that take an issuer URL
    look there for ``jwks_uri``; the document is not a full OpenID Provider configuration.
    """
    settings = runtime.settings
    return discovery_document(settings.issuer, runtime.keys.ring.algorithms, settings.audience)
