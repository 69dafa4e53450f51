"""PostgREST as the mount reaches it: one pooled HTTP client per worker, and the upstream URL
of every request built from parts fixed at start-up."""

from __future__ import annotations

import aiohttp
from yarl import URL

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


class UpstreamNotConfigured(Exception):
    """A URL built for a request does not point at GATEWAY_UPSTREAM_URL: a bug, never sent."""


class Upstream:
    """Scheme, host, port and base path of ``GATEWAY_UPSTREAM_URL``, parsed once.

    :meth:`url` puts a request's path and query under them as components, never by joining
    strings and parsing the result: whatever bytes the client sent, they land in the path or
    the query of a URL whose host and port are the configured ones.
    """

    __slots__ = ("_base_path", "_host", "_netloc_host", "_port", "_scheme", "host_header", "origin")

    def __init__(self, url: str) -> None:
        parsed = URL(url)
        if parsed.raw_user or parsed.raw_password or parsed.raw_query_string or parsed.raw_fragment:
            raise ValueError("GATEWAY_UPSTREAM_URL may hold no user, password, query or fragment")
        if parsed.raw_host is None or parsed.port is None:
            raise ValueError("GATEWAY_UPSTREAM_URL needs a host")
        self._scheme = parsed.scheme
        self._host = parsed.raw_host
        self._port = parsed.port
        self._netloc_host = parsed.host_subcomponent or self._host  # '[::1]' for IPv6
        self._base_path = parsed.raw_path.rstrip("/")
        self.host_header = parsed.raw_authority.encode()
        self.origin = f"{self._scheme}://{parsed.raw_authority}".encode()

    def url(self, path: bytes, query: bytes) -> URL:
        """The URL for ``path`` (starting with ``/``, checked by gateway.proxy.paths) and the
        raw query string, both already percent-encoded as the client sent them."""
        url = URL.build(
            scheme=self._scheme,
            host=self._netloc_host,
            port=self._port,
            path=self._base_path + path.decode("ascii"),
            query_string=query.decode("ascii"),
            encoded=True,
        )
        # Belt and braces: the components above cannot move the host, and this proves it.
        if url.raw_host != self._host or url.port != self._port or url.raw_user is not None:
            raise UpstreamNotConfigured(str(url.raw_host))
        return url
