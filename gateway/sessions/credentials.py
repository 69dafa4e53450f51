"""Reading a request's credentials: one parser for the mount and /auth, over the raw headers.

Two readers that disagree give one request two identities (the mount took the first access
cookie, /auth the last, and /auth read only the first ``Cookie`` field). Everything that decides
who is calling reads the headers through this module instead, and refuses what is ambiguous.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.asgi import Header
from gateway.sessions.errors import CsrfFailed, DuplicateAuthorization, DuplicateCookie
from gateway.tokens import InvalidToken

# RFC 9110 section 9.2.1: the methods a server must not take as a request to change state.
# An allow-list: every other method, in any letter case, needs the CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Presented:
    """What a request carries that could authenticate it, each item at most once."""

    authorization: bytes | None
    cookies: dict[bytes, bytes]
    csrf_header: bytes | None


def read_credentials(
    headers: Iterable[Header], gateway_cookies: frozenset[bytes], csrf_header: bytes
) -> Presented:
    """Every ``Cookie`` field and the ``Authorization`` field, read once.

    A gateway cookie name that appears twice (in one field or across fields) is refused: a
    browser holds one cookie per name, host and path, so two values mean a planted cookie, and
    whichever one we picked, some other reader might pick the other. A second ``X-CSRF-Token``
    field makes the CSRF header unusable (it then never matches).
    """
    authorization: bytes | None = None
    csrf: bytes | None = None
    csrf_fields = 0
    cookies: dict[bytes, bytes] = {}
    for raw_name, value in headers:
        name = raw_name.lower()
        if name == b"cookie":
            for pair in value.split(b";"):
                key, _, cookie = pair.strip().partition(b"=")
                key = key.strip()
                if key not in gateway_cookies:
                    continue
                if key in cookies:
                    raise DuplicateCookie(
                        f"The request carries the cookie {key.decode('latin-1')} more than once."
                    )
                cookies[key] = cookie.strip()
        elif name == b"authorization":
            if authorization is not None:
                raise DuplicateAuthorization("Send one Authorization header, not several.")
            authorization = value
        elif name == csrf_header:
            csrf_fields += 1
            csrf = value
    return Presented(
        authorization=authorization,
        cookies=cookies,
        csrf_header=csrf if csrf_fields == 1 else None,
    )


def bearer_token(presented: Presented) -> str | None:
    """The bearer token, or None without an ``Authorization`` field.

    Any other scheme, or ``Bearer`` without a token, is refused (401) rather than ignored: a
    request that says how it authenticates must not quietly be taken as the cookie's owner.
    """
    if presented.authorization is None:
        return None
    scheme, _, token = presented.authorization.strip().partition(b" ")
    if scheme.lower() != b"bearer" or not token.strip():
        raise InvalidToken("Send the access token as: Authorization: Bearer <token>.")
    return token.strip().decode("latin-1")


def access_token(presented: Presented, access_cookie: bytes) -> tuple[str, bool] | None:
    """The access token and whether it came from the cookie (which then needs the CSRF check)."""
    token = bearer_token(presented)
    if token is not None:
        return token, False
    cookie = presented.cookies.get(access_cookie)
    if cookie:
        return cookie.decode("latin-1"), True
    return None


def cookie(presented: Presented, name: bytes) -> str | None:
    value = presented.cookies.get(name)
    return value.decode("latin-1") if value else None


def needs_csrf(method: str) -> bool:
    """Whether a cookie-authenticated request with this method must carry the CSRF token."""
    return method.upper() not in SAFE_METHODS


def check_csrf(presented: Presented, csrf_cookie: bytes) -> None:
    """Double-submit check: the header must repeat the CSRF cookie (constant-time compare).

    A cross-site form can make the browser send our cookies, but it cannot read them to set the
    header.
    """
    expected = presented.cookies.get(csrf_cookie)
    sent = presented.csrf_header
    if not expected or not sent or not hmac.compare_digest(expected, sent):
        raise CsrfFailed("The X-CSRF-Token header is missing or does not match the CSRF cookie.")
