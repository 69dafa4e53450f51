"""Cookie mode: the tokens live in HttpOnly cookies and a readable CSRF cookie guards them."""

from __future__ import annotations

import secrets

from litestar.datastructures import Cookie

from gateway.sessions import CookieNames, cookie_names
from gateway.settings import Settings


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
            path=names.refresh_path,
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
        *_retired(settings, names),
    ]


def _retired(settings: Settings, names: CookieNames) -> list[Cookie]:
    return [
        _cookie(settings, name, "", path=path, httponly=True, max_age=0)
        for name, path in names.retired
    ]


def cleared_cookies(settings: Settings) -> list[Cookie]:
    names = cookie_names(settings)
    return [
        _cookie(
            settings,
            name,
            "",
            path=names.refresh_path if name == names.refresh else "/",
            httponly=name != names.csrf,
            max_age=0,
        )
        for name in names.all
    ] + _retired(settings, names)
