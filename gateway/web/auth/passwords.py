"""The password endpoints: forgot (the reset mail), reset (by its link), change (signed in)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.params import JSONBody

from gateway.accounts import request_password_reset, reset_password
from gateway.sessions import change_password
from gateway.web.auth.callers import access_credentials, client_of, credentials_of, require_csrf
from gateway.web.auth.openapi import THROTTLED, TOO_BIG, error_answers
from gateway.web.auth.password_schemas import (
    ChangePasswordRequest,
    ForgotPasswordAnswer,
    ForgotPasswordRequest,
    ResetPasswordRequest,
)
from gateway.web.json_body import require_json_content_type
from gateway.web.runtime import RuntimeDep

FORGOT_ANSWER = ForgotPasswordAnswer(
    message="If an account has that address, a mail with a link to reset its password is on "
    "its way. The link works once and expires."
)


class PasswordController(Controller):
    path = "/auth/password"
    guards = [require_json_content_type]  # noqa: RUF012
    tags = ["auth"]  # noqa: RUF012 - Litestar reads these class attributes once

    @post(
        "/forgot",
        summary="Mail a password reset link (the same answer for every address)",
        status_code=202,
        responses=error_answers(
            (400, "invalid_request, invalid_email"),
            TOO_BIG,
            THROTTLED,
            (503, "mail_not_configured"),
        ),
    )
    async def forgot(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[ForgotPasswordRequest],
    ) -> ForgotPasswordAnswer:
        """202 whether or not the address has an account; the mail goes out after the answer."""
        await request_password_reset(
            store=runtime.store,
            outbox=runtime.outbox,
            settings=runtime.settings,
            email=data.email,
            ip=client_of(request, runtime).ip,
        )
        return FORGOT_ANSWER

    @post(
        "/reset",
        summary="Set a new password with a reset link's token; every session ends",
        status_code=204,
        responses=error_answers(
            (400, "invalid_request, invalid_link_token, weak_password"),
            TOO_BIG,
            THROTTLED,
        ),
    )
    async def reset(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[ResetPasswordRequest],
    ) -> Response[None]:
        """The token from the mail's link; it works once. The address counts as verified."""
        await reset_password(
            store=runtime.store,
            passwords=runtime.passwords,
            settings=runtime.settings,
            token=data.token,
            password=data.password,
            ip=client_of(request, runtime).ip,
        )
        return Response(None, status_code=204)

    @post(
        "/change",
        summary="Change the caller's password; the caller's other sessions end",
        status_code=204,
        responses=error_answers(
            (400, "invalid_request, weak_password"),
            (401, "missing_token, invalid_token, session_revoked, invalid_credentials"),
            (403, "user_suspended, csrf_failed"),
            TOO_BIG,
            THROTTLED,
        ),
    )
    async def change(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[ChangePasswordRequest],
    ) -> Response[None]:
        """Bearer token, or the access cookie with X-CSRF-Token; the current password first."""
        presented = credentials_of(request, runtime)
        token, via_cookie = access_credentials(presented, runtime)
        if via_cookie:
            require_csrf(presented, runtime)
        await change_password(
            store=runtime.store,
            settings=runtime.settings,
            passwords=runtime.password_check,
            ring=runtime.keys.ring,
            access_token=token,
            current_password=data.current_password,
            new_password=data.new_password,
            client=client_of(request, runtime),
        )
        return Response(None, status_code=204)
