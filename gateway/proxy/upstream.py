"""The one HTTP client session per worker that talks to PostgREST."""

from __future__ import annotations

import aiohttp

from gateway.settings import Settings


def make_client_session(settings: Settings) -> aiohttp.ClientSession:
    """One pooled session per worker: no cookie jar (cookies belong to the clients), no
    decompression (bodies pass through as PostgREST sent them), explicit timeouts."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=settings.upstream_pool_size, ttl_dns_cache=300),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(
            total=None,
            connect=settings.upstream_connect_timeout,
            sock_read=settings.upstream_read_timeout,
        ),
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
    )
