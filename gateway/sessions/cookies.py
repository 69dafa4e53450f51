"""Cookie mode: the tokens live in HttpOnly cookies and a readable CSRF cookie guards them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from litestar.datastructures import Cookie

from gateway.settings import Settings

CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True, slots=True)
class CookieNames:
    access: str
    refresh: str
    csrf: str
    refresh_path: str
    # (name, path) of cookies earlier versions set: expired on every login and logout.
    retired: tuple[tuple[str, str], ...] = ()

    @property
    def all(self) -> tuple[str, str, str]:
        return (self.access, self.refresh, self.csrf)

    @property
    def encoded(self) -> frozenset[bytes]:
        return frozenset(name.encode() for name in self.all)


def cookie_names(settings: Settings) -> CookieNames:
    """``__Host-`` names when secure: the browser then refuses them from subdomains or plain HTTP.

    The refresh cookie is ``__Host-`` too, so it needs ``Path=/``: a ``__Secure-`` cookie may be
    set with ``Domain=`` by any sibling subdomain, which could plant its own refresh token and
    swap a victim into the planter's session at the next refresh. It then also travels with
    ``/rest`` requests, where the mount strips it before PostgREST. The old
    ``__Secure-gw_refresh`` is not read any more (reading it when the new one is missing would
    bring the swap back); it is only expired. Without ``Secure`` (plain-HTTP development) browsers
    refuse both prefixes, so the names are plain and the refresh cookie keeps ``Path=/auth``.
    """
    if settings.cookie_secure:
        return CookieNames(
            "__Host-gw_access",
            "__Host-gw_refresh",
            "__Host-gw_csrf",
            refresh_path="/",
            retired=(("__Secure-gw_refresh", "/auth"),),
        )
    return CookieNames("gw_access", "gw_refresh", "gw_csrf", refresh_path="/auth")


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
