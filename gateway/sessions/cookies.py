"""Cookie mode: the tokens live in HttpOnly cookies and a readable CSRF cookie guards them."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from litestar.datastructures import Cookie

from gateway.sessions.errors import CsrfFailed
from gateway.settings import Settings

CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True, slots=True)
class CookieNames:
    access: str
    refresh: str
    csrf: str

    @property
    def all(self) -> tuple[str, str, str]:
        return (self.access, self.refresh, self.csrf)


def cookie_names(settings: Settings) -> CookieNames:
    """``__Host-`` names when secure: the browser then refuses them from subdomains or plain HTTP.

    The refresh cookie is scoped to ``/auth`` so that it never travels with API requests, and a
    ``__Host-`` cookie must have ``Path=/``; it takes the ``__Secure-`` prefix instead.
    """
    if settings.cookie_secure:
        return CookieNames("__Host-gw_access", "__Secure-gw_refresh", "__Host-gw_csrf")
    return CookieNames("gw_access", "gw_refresh", "gw_csrf")


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def _cookie(
    settings: Settings, key: str, value: str, *, path: str, httponly: bool, max_age: int
) -> Cookie:
    return Cookie(
        key=key,
        value=value,
        path=path,
        httponly=httponly,
        max_age=max_age,
        secure=settings.cookie_secure,
        samesite="lax",
    )


def session_cookies(
    settings: Settings, *, access_token: str, refresh_token: str, csrf_token: str
) -> list[Cookie]:
    names = cookie_names(settings)
    return [
        _cookie(
            settings,
            names.access,
            access_token,
            path="/",
            httponly=True,
            max_age=settings.access_token_ttl,
        ),
        _cookie(
            settings,
            names.refresh,
            refresh_token,
            path="/auth",
            httponly=True,
            max_age=settings.refresh_token_ttl,
        ),
        # Readable by the page's script, which copies it into X-CSRF-Token (double submit).
        _cookie(
            settings,
            names.csrf,
            csrf_token,
            path="/",
            httponly=False,
            max_age=settings.refresh_token_ttl,
        ),
    ]


def cleared_cookies(settings: Settings) -> list[Cookie]:
    names = cookie_names(settings)
    return [
        _cookie(
            settings,
            name,
            "",
            path="/auth" if name == names.refresh else "/",
            httponly=name != names.csrf,
            max_age=0,
        )
        for name in names.all
    ]


def check_csrf(cookie_value: str | None, header_value: str | None) -> None:
    """Double-submit check: the header must repeat the CSRF cookie (constant-time compare).

    A cross-site form can make the browser send our cookies, but it cannot read them to set the
    header.
    """
    if (
        not cookie_value
        or not header_value
        or not hmac.compare_digest(cookie_value.encode(), header_value.encode())
    ):
        raise CsrfFailed("The X-CSRF-Token header is missing or does not match the CSRF cookie.")
