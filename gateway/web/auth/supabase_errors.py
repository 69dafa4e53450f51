"""GoTrue's error shape for /auth/v1: the gateway's answer, translated, never a second policy.

Every failure is first answered exactly as /auth answers it (gateway/web/errors.py: the same
exception, the same status and code); :func:`gotrue_error` then renames the code to GoTrue's
where supabase-js or its apps look for one (``invalid_credentials``, ``session_not_found``,
``weak_password``, ...) and the body becomes ``{"code": <status>, "error_code", "msg"}``.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response

from gateway.errors import GatewayError
from gateway.web.errors import exception_handlers as our_handlers

#: Our code → GoTrue's (status, error_code), where GoTrue has one (supabase/auth apierrors).
#: Codes not listed keep their status and their name.
GOTRUE_CODES: dict[str, tuple[int, str]] = {
    "invalid_credentials": (400, "invalid_credentials"),
    "user_suspended": (400, "user_banned"),
    "email_not_verified": (400, "email_not_confirmed"),
    "invalid_refresh_token": (400, "refresh_token_not_found"),
    "refresh_token_reused": (400, "refresh_token_already_used"),
    "session_revoked": (403, "session_not_found"),
    "session_expired": (403, "session_expired"),
    "missing_token": (401, "no_authorization"),
    "invalid_token": (403, "bad_jwt"),
    "invalid_request": (400, "validation_failed"),
    "invalid_input": (400, "validation_failed"),
    "invalid_email": (400, "email_address_invalid"),
    "weak_password": (422, "weak_password"),
    "signup_closed": (422, "signup_disabled"),
    "too_many_attempts": (429, "over_request_rate_limit"),
    "too_many_requests": (429, "over_request_rate_limit"),
    "internal_error": (500, "unexpected_failure"),
}


def gotrue_error(status: int, code: str, message: str) -> dict[str, Any]:
    """GoTrue's error body for one of our answers (``status``, ``code``, ``message``)."""
    status, error_code = GOTRUE_CODES.get(code, (status, code))
    body: dict[str, Any] = {"code": status, "error_code": error_code, "msg": message}
    if error_code == "weak_password":
        # supabase-js makes an AuthWeakPasswordError of it only with a list of reasons; the
        # gateway's policy is about length alone.
        body["weak_password"] = {"message": message, "reasons": ["length"]}
    return body


def _our_answer(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    for kind in type(exc).__mro__:
        handler = our_handlers.get(kind)
        if handler is not None:
            answer: Response[Any] = handler(request, exc)
            return answer
    raise exc  # unreachable: our handlers cover Exception


def gotrue_answer(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """The controller-level handler: our answer, headers (Retry-After, WWW-Authenticate) kept."""
    ours = _our_answer(request, exc)
    content = ours.content if isinstance(ours.content, dict) else {}
    body = gotrue_error(
        ours.status_code or 500,
        str(content.get("code", "unexpected_failure")),
        str(content.get("message", "The request failed.")),
    )
    # A status GoTrue gives differently (401 invalid_credentials is its 400) keeps only the
    # headers that still fit: RFC 6750's WWW-Authenticate belongs to 401 answers alone.
    headers = {
        name: value
        for name, value in ours.headers.items()
        if name.lower() not in ("content-type", "www-authenticate")
    }
    if body["code"] == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return Response(body, status_code=body["code"], media_type=MediaType.JSON, headers=headers)


#: For a controller's ``exception_handlers``: every exception, as GoTrue would shape it.
GOTRUE_HANDLERS: dict[type[Exception] | int, Any] = dict.fromkeys(
    [kind for kind in our_handlers if isinstance(kind, type)], gotrue_answer
)


class UnsupportedGrantType(GatewayError):
    code = "unsupported_grant_type"
    status = 400


class ProviderDisabled(GatewayError):
    """Phone sign-in and sign-up: the gateway knows email and password only."""

    code = "phone_provider_disabled"
    status = 400


class NotSupported(GatewayError):
    """A field GoTrue accepts that the gateway does not act on (email change, user_metadata)."""

    code = "validation_failed"
    status = 422


class ReauthenticationNeeded(GatewayError):
    """A new password without the current one: the gateway always asks for it."""

    code = "reauthentication_needed"
    status = 400


class InvalidApiKey(GatewayError):
    code = "invalid_api_key"
    status = 401
