"""The PostgREST mount: path and header rules, the upstream client, the verified-token cache."""

from __future__ import annotations

from gateway.proxy.dependencies import MountDependencies
from gateway.proxy.error_answers import json_error
from gateway.proxy.mount import PostgrestMount
from gateway.proxy.paths import under_prefix
from gateway.proxy.response_headers import merge_vary
from gateway.proxy.token_cache import VerifiedTokens
from gateway.proxy.upstream import make_client_session

__all__ = [
    "MountDependencies",
    "PostgrestMount",
    "VerifiedTokens",
    "json_error",
    "make_client_session",
    "merge_vary",
    "under_prefix",
]
