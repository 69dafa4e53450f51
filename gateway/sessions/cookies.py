"""The names of the session cookies and the CSRF header, which the mount and /auth both read."""

from __future__ import annotations

from dataclasses import dataclass

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
