"""``/auth/v1``: Supabase Auth (GoTrue) compatible endpoints, so supabase-js works unchanged.

Thin handlers over the same functions /auth calls (``sessions.login``, ``sessions.refresh``,
``sessions.logout_caller``, ``sessions.change_password``, ``accounts.sign_up``,
``accounts.request_password_reset``): the same checks, throttles, lockout and timing, in
GoTrue's request and answer shapes. What GoTrue has and this does not: docs/supabase.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, post, put
from litestar.connection.base import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.params import JSONBody, QueryParameter

from gateway.accounts import request_password_reset, sign_up
from gateway.errors import InvalidInput
from gateway.sessions import change_password, logout_caller
from gateway.sessions import login as login_user
from gateway.sessions import refresh as refresh_tokens
from gateway.tokens import AnonKeyRetired, InvalidToken, is_anon_key
from gateway.web.auth.callers import bearer_credentials, client_of
from gateway.web.auth.openapi import gotrue_error_answers
from gateway.web.auth.signup import require_open_signup
from gateway.web.auth.supabase_answers import caller_user, session_answer, signup_answer
from gateway.web.auth.supabase_errors import (
    GOTRUE_HANDLERS,
    InvalidApiKey,
    NotSupported,
    ProviderDisabled,
    ReauthenticationNeeded,
    UnsupportedGrantType,
)
from gateway.web.auth.supabase_schemas import (
    AuthSettings,
    Empty,
    External,
    RecoverRequest,
    Session,
    SignupRequest,
    SignupUser,
    TokenRequest,
    UpdateUserRequest,
    User,
)
from gateway.web.json_body import require_json_content_type
from gateway.web.observed import note_auth_action
from gateway.web.runtime import RuntimeDep, runtime_of

#: What every /auth/v1 operation may answer besides its success (GoTrue's error body).
ERRORS = gotrue_error_answers(400, 401, 403, 413, 422, 429, 503)


def check_api_key(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: an ``apikey`` header, when sent, must be this gateway's anon key.

    The key grants nothing (the bearer token says who calls), so a missing one is no
    error; a wrong one is, so that an app built with another project's key, or with a key
    whose signing key was pruned (``anon_key_retired``), fails at once and says why.
    """
    values = connection.headers.getall("apikey", [])
    if not values:
        return
    if len(values) > 1:
        raise InvalidApiKey("Send one apikey header.")
    dependencies = runtime_of(connection.app.state).mount_dependencies
    try:
        claims = dependencies.tokens.verify(dependencies.keys.ring, values[0])
    except AnonKeyRetired:
        raise
    except InvalidToken:
        claims = {}
    if not is_anon_key(claims):
        raise InvalidApiKey(
            "The apikey is not an anon key of this gateway; `gateway keys anon-key` prints one."
        )


class SupabaseAuthController(Controller):
    path = "/auth/v1"
    guards = [require_json_content_type, check_api_key]  # noqa: RUF012
    exception_handlers = GOTRUE_HANDLERS
    tags = ["auth/v1 (Supabase)"]  # noqa: RUF012 - Litestar reads these class attributes once

    @post(
        "/token",
        summary="GoTrue's sign-in (grant_type=password) and refresh (grant_type=refresh_token)",
        status_code=200,
        responses=ERRORS,
    )
    async def token(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[TokenRequest],
        grant_type: Annotated[str | None, QueryParameter(max_length=64)] = None,
    ) -> Response[Session]:
        """The session in GoTrue's shape; the access token is the gateway's own."""
        client = client_of(request, runtime)
        if grant_type == "password":
            note_auth_action(request, "sign_in")
            if data.email is None and data.phone is not None:
                raise ProviderDisabled("Phone logins are disabled.")
            if data.email is None or data.password is None:
                raise InvalidInput("Send an email and a password.")
            issued = await login_user(
                store=runtime.store,
                settings=runtime.settings,
                passwords=runtime.password_check,
                issuer=runtime.issuer,
                email=data.email,
                password=data.password,
                organization_id=None,
                client=client,
            )
        elif grant_type == "refresh_token":
            note_auth_action(request, "refresh")
            if data.refresh_token is None:
                raise InvalidInput("Send a refresh_token.")
            issued = await refresh_tokens(
                store=runtime.store,
                issuer=runtime.issuer,
                successor_key=runtime.refresh_key,
                reuse_grace=runtime.settings.refresh_reuse_grace,
                refresh_token=data.refresh_token,
                client=client,
            )
        else:
            raise UnsupportedGrantType(
                "unsupported_grant_type: grant_type must be password or refresh_token."
            )
        return await session_answer(runtime, issued)

    @post(
        "/logout",
        summary="End this session (local), the others, or every session of the user (global)",
        status_code=204,
        responses=ERRORS,
    )
    async def logout(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        logout_scope: Annotated[
            Literal["global", "local", "others"], QueryParameter(name="scope")
        ] = "global",
    ) -> Response[None]:
        """GoTrue's default scope is ``global`` (the /auth endpoint's is ``local``)."""
        token = bearer_credentials(request, runtime)
        await logout_caller(
            runtime.store,
            access_token=token,
            ring=runtime.keys.ring,
            settings=runtime.settings,
            scope=logout_scope,
            ip=client_of(request, runtime).ip,
        )
        return Response(None, status_code=204)

    @get("/user", summary="The caller, as GoTrue's user object", responses=ERRORS)
    async def user(self, request: Request[Any, Any, Any], runtime: RuntimeDep) -> User:
        token = bearer_credentials(request, runtime)
        return await caller_user(runtime, token)

    @put(
        "/user",
        summary="Change the caller's password (current_password required); nothing else",
        responses=ERRORS,
    )
    async def update_user(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[UpdateUserRequest],
    ) -> User:
        """``{"password", "current_password"}``: the caller's other sessions end. An email or
        phone change and non-empty ``data`` are refused (422); no field at all changes nothing."""
        token = bearer_credentials(request, runtime)
        if data.email is not None or data.phone is not None:
            raise NotSupported("Changing the email or the phone is not supported here.")
        if data.data:
            raise NotSupported("The gateway keeps no user_metadata: send no data.")
        if data.password is not None:
            if data.current_password is None:
                raise ReauthenticationNeeded(
                    "Send current_password with the new password: updateUser({password, "
                    "current_password})."
                )
            await change_password(
                store=runtime.store,
                settings=runtime.settings,
                passwords=runtime.password_check,
                ring=runtime.keys.ring,
                access_token=token,
                current_password=data.current_password,
                new_password=data.password,
                client=client_of(request, runtime),
            )
        return await caller_user(runtime, token)

    @post(
        "/signup",
        summary="Create an account (GATEWAY_SIGNUP=open): the same answer for every address",
        status_code=200,
        guards=[require_open_signup],
        responses=ERRORS,
    )
    async def signup(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, data: JSONBody[SignupRequest]
    ) -> SignupUser:
        """No session: the account signs in once it exists (a verification mail goes out)."""
        if data.email is None and data.phone is not None:
            raise ProviderDisabled("Phone signups are disabled.")
        if data.email is None or data.password is None:
            raise InvalidInput("Send an email and a password.")
        if data.data:
            raise NotSupported("The gateway keeps no user_metadata: send no data.")
        await sign_up(
            store=runtime.store,
            passwords=runtime.passwords,
            mailer=runtime.mailer,
            settings=runtime.settings,
            email=data.email,
            password=data.password,
            organization_name=None,
            ip=client_of(request, runtime).ip,
        )
        return signup_answer(data.email, runtime.settings)

    @post(
        "/recover",
        summary="Mail a password reset link (the same answer for every address)",
        status_code=200,
        responses=ERRORS,
    )
    async def recover(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, data: JSONBody[RecoverRequest]
    ) -> Empty:
        """The link leads to GATEWAY_LINK_BASE_URL's reset page (POST /auth/password/reset)."""
        await request_password_reset(
            store=runtime.store,
            outbox=runtime.outbox,
            settings=runtime.settings,
            email=data.email,
            ip=client_of(request, runtime).ip,
        )
        return Empty()

    @get("/settings", summary="Which sign-in methods exist, whether sign-up is open")
    async def settings(self, runtime: RuntimeDep) -> AuthSettings:
        return AuthSettings(
            external=External(email=True, phone=False, anonymous_users=False),
            disable_signup=runtime.settings.signup != "open",
            mailer_autoconfirm=False,
            phone_autoconfirm=False,
            sms_provider="",
            saml_enabled=False,
        )
