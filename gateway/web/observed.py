"""What the request log counts, decided from the route and the answer (pure functions).

The sign-in and refresh outcomes are read at the HTTP edge from the path and the answer's error
code (``scope["state"]["error_code"]``, set by the error handlers), so the domain logic in
gateway/sessions counts nothing.
"""

from __future__ import annotations

from typing import Final, Literal

from gateway.metrics import Metrics

AuthEvent = Literal["sign_in_succeeded", "sign_in_failed", "locked_out", "refresh_reused"]

_HEALTH: Final = frozenset({"/healthz", "/readyz"})
_SIGN_IN_PATHS: Final = frozenset({"/auth/login"})
_REFRESH_PATHS: Final = frozenset({"/auth/refresh"})
_GOTRUE_GRANTS: Final = "/auth/v1/token"
#: The codes of a sign-in refused for who is signing in (not for a malformed request).
_SIGN_IN_REFUSALS: Final = frozenset(
    {"invalid_credentials", "user_suspended", "email_not_verified", "not_a_member"}
)


def route_group(path: str, proxy_prefixes: tuple[str, ...] = ()) -> str:
    """The bounded ``group`` label of a request to ``path`` (the decoded path)."""
    for prefix in proxy_prefixes:
        if path == prefix or path.startswith(prefix + "/"):
            return "rest"
    if path in _HEALTH:
        return "health"
    for group in ("auth", "admin", "storage"):
        if path == "/" + group or path.startswith("/" + group + "/"):
            # /admin is the gateway's account API: counted with /auth.
            return "auth" if group == "admin" else group
    return "other"


def auth_event(path: str, query: bytes, status: int, code: str | None) -> AuthEvent | None:
    """The sign-in or refresh outcome a POST to ``path`` answered with, if it is one."""
    path = path.rstrip("/")
    if path == _GOTRUE_GRANTS:
        grant = _grant_type(query)
        if grant == "password":
            return _sign_in(status, code)
        if grant == "refresh_token":
            return _refresh(code)
        return None
    if path in _SIGN_IN_PATHS:
        return _sign_in(status, code)
    if path in _REFRESH_PATHS:
        return _refresh(code)
    return None


def _sign_in(status: int, code: str | None) -> AuthEvent | None:
    if status == 200:
        return "sign_in_succeeded"
    if code == "too_many_attempts":
        return "locked_out"
    if code in _SIGN_IN_REFUSALS:
        return "sign_in_failed"
    return None


def _refresh(code: str | None) -> AuthEvent | None:
    return "refresh_reused" if code == "refresh_token_reused" else None


def _grant_type(query: bytes) -> str | None:
    # Only the one parameter, and nothing of the query is kept: it can carry tokens.
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if name == b"grant_type":
            return value.decode("latin-1")
    return None


class AuthCounters:
    """The counter children each :data:`AuthEvent` moves, looked up once."""

    __slots__ = ("_children",)

    def __init__(self, metrics: Metrics) -> None:
        self._children = {
            "sign_in_succeeded": metrics.sign_ins.labels("succeeded"),
            "sign_in_failed": metrics.sign_ins.labels("failed"),
            "locked_out": metrics.sign_ins.labels("locked_out"),
            "refresh_reused": metrics.refresh_reuse,
        }

    def count(self, event: AuthEvent) -> None:
        self._children[event].inc()
