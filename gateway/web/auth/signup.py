"""``/auth/signup`` and ``/auth/verify-email``: thin handlers over the accounts functions."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, post
from litestar.connection.base import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody

from gateway.accounts import resend_verification, sign_up, signup_refusal, verify_email
from gateway.sessions import describe_token_holder
from gateway.web.auth.callers import access_credentials, client_of, credentials_of, require_csrf
from gateway.web.auth.openapi import THROTTLED, TOO_BIG, error_answers
from gateway.web.auth.signup_schemas import SignupAccepted, SignupRequest, VerifyEmailRequest
from gateway.web.json_body import OptionalBodyOperation, require_json_content_type
from gateway.web.runtime import RuntimeDep, runtime_of

#: The body of every accepted sign-up, new address or known: it must not tell them apart.
SIGNUP_ACCEPTED = SignupAccepted(
    message="Check your inbox: if this address can receive mail, a message with the next step "
    "is on its way to it."
)
MAIL_DOWN = (503, "mail_not_configured, mail_unavailable")


def require_open_signup(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard: a closed (or invite-only) gateway refuses before the body is even read, so the
    answer depends on nothing the client sent."""
    refusal = signup_refusal(runtime_of(connection.app.state).settings.signup)
    if refusal is not None:
        raise refusal


class SignupController(Controller):
    path = "/auth"
    guards = [require_json_content_type]  # noqa: RUF012
    tags = ["auth"]  # noqa: RUF012 - Litestar reads these class attributes once

    @post(
        "/signup",
        summary="Create an account (GATEWAY_SIGNUP=open); a verification mail follows",
        status_code=202,
        guards=[require_open_signup],
        responses=error_answers(
            (400, "invalid_request, invalid_email, weak_password, invalid_organization_name"),
            (403, "signup_closed"),
            (409, "organization_name_taken"),
            TOO_BIG,
            THROTTLED,
            MAIL_DOWN,
        ),
    )
    async def signup(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, data: JSONBody[SignupRequest]
    ) -> SignupAccepted:
        """The same 202 for a new and a known address; the mail says which it was."""
        await sign_up(
            store=runtime.store,
            passwords=runtime.passwords,
            mailer=runtime.mailer,
            settings=runtime.settings,
            email=data.email,
            password=data.password,
            organization_name=data.organization_name,
            ip=client_of(request, runtime).ip,
        )
        return SIGNUP_ACCEPTED

    @post(
        "/verify-email",
        summary="Follow a verification link: the account's address is verified",
        status_code=204,
        responses=error_answers((400, "invalid_request, invalid_link_token"), TOO_BIG, THROTTLED),
    )
    async def verify_email(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[VerifyEmailRequest],
    ) -> Response[None]:
        """The token from the link's `?token=`; it works once."""
        await verify_email(store=runtime.store, token=data.token, ip=client_of(request, runtime).ip)
        return Response(None, status_code=204)

    @post(
        "/verify-email/resend",
        summary="A fresh verification mail for the signed-in caller",
        operation_class=OptionalBodyOperation,
        status_code=202,
        responses=error_answers(
            (401, "missing_token, invalid_token, session_revoked, session_expired"),
            (403, "user_suspended, csrf_failed"),
            (409, "email_already_verified"),
            THROTTLED,
            MAIL_DOWN,
        ),
    )
    async def resend_verification(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep
    ) -> Response[None]:
        """Bearer (or the access cookie with X-CSRF-Token); older links stop working."""
        presented = credentials_of(request, runtime)
        token, via_cookie = access_credentials(presented, runtime)
        if via_cookie:
            require_csrf(presented, runtime)
        me = await describe_token_holder(
            runtime.store, access_token=token, ring=runtime.keys.ring, settings=runtime.settings
        )
        await resend_verification(
            store=runtime.store,
            mailer=runtime.mailer,
            settings=runtime.settings,
            user_id=me.user.id,
            ip=client_of(request, runtime).ip,
        )
        return Response(None, status_code=202)
