"""What can go wrong on the way to PostgREST and back (timeouts are :class:`TimeoutError`)."""

from __future__ import annotations


class UpstreamError(Exception):
    """PostgREST could not be reached, or its answer could not be read."""


class UpstreamUnreachable(UpstreamError):
    """No connection could be made (refused, no such socket, name not resolved)."""


class UpstreamClosed(UpstreamError):
    """The connection ended before the answer did."""


class UpstreamProtocolError(UpstreamError):
    """The bytes PostgREST sent are not an HTTP/1.1 answer the client accepts (garbage, an
    upgrade, an answer to no request)."""


class UnsendableRequest(ValueError):
    """A request target or header that would change the request's framing (CR, LF, NUL, a
    space in the target): refused before a byte goes upstream; or a body that does not match
    its ``Content-Length``: the connection it went out on is closed."""
