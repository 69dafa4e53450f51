"""Everything the gateway says to PostgREST and its database: bootstrap, JWKS, doctor, explain."""

from __future__ import annotations

from gateway.postgrest.bootstrap import BootstrapPlan, BootstrapRefused, apply_bootstrap
from gateway.postgrest.database import postgrest_database_url
from gateway.postgrest.doctor import as_json, run_doctor
from gateway.postgrest.explain import explain_token
from gateway.postgrest.jwks_database import JWKSRefused, publish_jwks, published_jwks
from gateway.postgrest.notify import notify_postgrest

__all__ = [
    "BootstrapPlan",
    "BootstrapRefused",
    "JWKSRefused",
    "apply_bootstrap",
    "as_json",
    "explain_token",
    "notify_postgrest",
    "postgrest_database_url",
    "publish_jwks",
    "published_jwks",
    "run_doctor",
]
