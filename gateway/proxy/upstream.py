"""PostgREST as the mount reaches it: one pooled client per worker (gateway.upstream)."""

from __future__ import annotations

from gateway.settings import Settings
from gateway.upstream import UpstreamClient, make_upstream_client


def make_client_session(settings: Settings) -> UpstreamClient:
    """One pooled client per worker: no cookie jar (cookies belong to the clients), no
    decompression (bodies pass through as PostgREST sent them), explicit timeouts."""
    return make_upstream_client(settings)
