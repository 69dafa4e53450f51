"""Where PostgREST listens, parsed once from ``GATEWAY_UPSTREAM_URL``, and the request targets
built under it from parts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.upstream._errors import UnsendableRequest

# What an origin-form request target may hold, byte by byte: visible ASCII only. No space, CR,
# LF, NUL, other controls, DEL or bytes over 0x7e: nothing that ends the request line or starts
# a header. '#' is refused too (a fragment is never sent). RFC 9112 section 3.2.1.
_TARGET = re.compile(rb"/[\x21\x22\x24-\x7e]*")
_BASE_PATH = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)*")
UNIX_SCHEME = "unix"


def check_target(target: bytes) -> None:
    """Raise :class:`UnsendableRequest` unless ``target`` is ``/`` and visible ASCII."""
    if _TARGET.fullmatch(target) is None:
        raise UnsendableRequest("The request target holds a byte that cannot be sent.")


@dataclass(frozen=True, slots=True)
class UpstreamAddress:
    """A TCP host and port (``http://`` or ``https://``) or a Unix socket path (``unix://``).

    ``host_header`` is what PostgREST gets as ``Host`` (``localhost`` over a Unix socket), and
    ``origin`` the URL prefix of the ``Location`` headers it may send back.
    """

    scheme: str
    host: str
    port: int
    socket_path: str | None
    base_path: bytes
    host_header: bytes
    origin: bytes

    @classmethod
    def parse(cls, url: str) -> UpstreamAddress:
        """Parse ``url``; :class:`ValueError` for anything the proxy could not reach safely."""
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None or parts.query:
            raise ValueError("an upstream URL may hold no user, password or query string")
        if parts.fragment or "#" in url:
            raise ValueError("an upstream URL may hold no fragment")
        if parts.scheme == UNIX_SCHEME:
            return cls._unix(parts.netloc, parts.path)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("an upstream URL is http://host[:port][/path] or unix:///socket")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        path = parts.path.rstrip("/")
        if not _BASE_PATH.fullmatch(path):
            raise ValueError("the upstream URL's path holds a character that must be escaped")
        authority = parts.netloc.encode("ascii")
        return cls(
            scheme=parts.scheme,
            host=parts.hostname,
            port=port,
            socket_path=None,
            base_path=path.encode("ascii"),
            host_header=authority,
            origin=f"{parts.scheme}://".encode() + authority,
        )

    @classmethod
    def _unix(cls, netloc: str, path: str) -> UpstreamAddress:
        # unix:///run/postgrest.sock: no authority, an absolute path, nothing after it.
        if netloc or not path.startswith("/") or path.endswith("/"):
            raise ValueError("a Unix socket upstream is unix:///absolute/path/to/socket")
        # Taken as written (no percent-decoding): the path checked is the path connected to.
        socket_path = path
        if re.search(r"[\x00-\x1f\x7f]", path) or {".", ".."} & set(path.split("/")):
            raise ValueError("a Unix socket path may hold no control character, '.' or '..'")
        return cls(
            scheme=UNIX_SCHEME,
            host="localhost",
            port=0,
            socket_path=socket_path,
            base_path=b"",
            host_header=b"localhost",
            origin=b"http://localhost",
        )

    def target(self, path: bytes, query: bytes = b"") -> bytes:
        """The request target for ``path`` (from ``/``) and the raw ``query``: base path + path
        + ``?`` + query, as bytes. Raises :class:`UnsendableRequest` for a byte that could end
        the request line or start a header; the mount refuses those earlier, this proves it."""
        target = self.base_path + path + b"?" + query if query else self.base_path + path
        check_target(target)
        return target

    def __str__(self) -> str:
        if self.socket_path is not None:
            return f"unix://{self.socket_path}"
        return (self.origin + self.base_path).decode("ascii")
