"""The PostgREST mount: path and header rules, the upstream client, the verified-token cache."""

from __future__ import annotations

from gateway.proxy.dependencies import MountDependencies
from gateway.proxy.error_answers import json_error
from gateway.proxy.mount import PostgrestMount
from gateway.proxy.paths import SUPABASE_REST_PREFIX, mount_prefix, under_prefix
from gateway.proxy.response_headers import merge_vary
from gateway.proxy.token_cache import VerifiedTokens
from gateway.proxy.upstream import make_client_session

__all__ = [
    "SUPABASE_REST_PREFIX",
    "MountDependencies",
    "PostgrestMount",
    "VerifiedTokens",
    "json_error",
    "make_client_session",
    "merge_vary",
    "mount_prefix",
    "under_prefix",
]
