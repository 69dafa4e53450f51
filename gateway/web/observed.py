"""What the request log counts, decided from the route and the answer (pure functions).

The sign-in and refresh outcomes are read at the HTTP edge: the handler that signs in or
refreshes notes which of the two it did (:func:`note_auth_action`, in ``scope["state"]``), and
the error handlers note the answer's code (``scope["state"]["error_code"]``). The counter reads
what the handler acted on, never a second parse of the path or the query; the domain logic in
gateway/sessions counts nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Literal

from gateway.metrics import Metrics

if TYPE_CHECKING:
    from litestar import Request

AuthEvent = Literal["sign_in_succeeded", "sign_in_failed", "locked_out", "refresh_reused"]
AuthAction = Literal["sign_in", "refresh"]

#: The key of ``scope["state"]`` that :func:`note_auth_action` sets.
AUTH_ACTION: Final = "auth_action"
_HEALTH: Final = frozenset({"/healthz", "/readyz"})
#: The codes of a sign-in refused for who is signing in (not for a malformed request).
_SIGN_IN_REFUSALS: Final = frozenset(
    {"invalid_credentials", "user_suspended", "email_not_verified", "not_a_member"}
)


def note_auth_action(request: Request[Any, Any, Any], action: AuthAction) -> None:
    """Called by a handler before it signs in or refreshes, so the request log counts the
    outcome of what was done (e.g. the grant Litestar decoded from the query), not a guess."""
    request.scope.setdefault("state", {})[AUTH_ACTION] = action


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


def auth_event(action: object, status: int, code: str | None) -> AuthEvent | None:
    """The outcome of the sign-in or refresh a handler noted (``action``), if it was one."""
    if action == "sign_in":
        return _sign_in(status, code)
    if action == "refresh":
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
