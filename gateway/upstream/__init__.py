"""The HTTP/1.1 client to PostgREST: a pooled keep-alive connection per request in flight,
over TCP or a Unix socket, that passes bytes through as they are."""

from __future__ import annotations

from gateway.settings import Settings
from gateway.upstream._errors import (
    UnsendableRequest,
    UpstreamClosed,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamUnreachable,
)
from gateway.upstream.address import UpstreamAddress
from gateway.upstream.client import UpstreamAnswer, UpstreamClient


def make_upstream_client(settings: Settings) -> UpstreamClient:
    """One client per worker process, for ``GATEWAY_UPSTREAM_URL`` and its pool and timeouts."""
    return UpstreamClient(
        UpstreamAddress.parse(settings.upstream_url),
        pool_size=settings.upstream_pool_size,
        connect_timeout=settings.upstream_connect_timeout,
        read_timeout=settings.upstream_read_timeout,
    )


__all__ = [
    "UnsendableRequest",
    "UpstreamAddress",
    "UpstreamAnswer",
    "UpstreamClient",
    "UpstreamClosed",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamUnreachable",
    "make_upstream_client",
]
