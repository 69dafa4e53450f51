"""The /auth endpoints: thin handlers that parse, call the sessions package, and shape answers."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.params import JSONBody

from gateway.sessions import (
    MissingCredentials,
    RefreshTokenRequired,
    SessionExpired,
    SessionRevoked,
    describe_token_holder,
    logout_by_refresh_token,
    logout_caller,
)
from gateway.sessions import login as login_user
from gateway.sessions import refresh as refresh_tokens
from gateway.sessions import switch_organization as switch_to
from gateway.tokens import InvalidToken
from gateway.web.auth.answers import token_answer
from gateway.web.auth.callers import (
    access_credentials,
    client_of,
    credentials_of,
    refresh_cookie,
    require_csrf,
)
from gateway.web.auth.cookies import (
    cleared_cookies,
)
from gateway.web.auth.openapi import BAD_INPUT, THROTTLED, TOO_BIG, error_answers
from gateway.web.auth.schemas import (
    CookieTokenResponse,
    LoginRequest,
    LogoutRequest,
    MeMembership,
    MeResponse,
    MeSession,
    MeUser,
    RefreshRequest,
    SwitchOrganizationRequest,
    TokenResponse,
)
from gateway.web.json_body import OptionalBodyOperation, require_json_content_type
from gateway.web.observed import note_auth_action
from gateway.web.runtime import RuntimeDep


class AuthController(Controller):
    path = "/auth"
    guards = [require_json_content_type]  # noqa: RUF012
    tags = ["auth"]  # noqa: RUF012 - Litestar reads these class attributes once

    @post(
        "/login",
        summary="Sign in with email and password",
        status_code=200,
        responses=error_answers(
            BAD_INPUT,
            (401, "invalid_credentials"),
            (403, "user_suspended, not_a_member"),
            TOO_BIG,
            THROTTLED,
        ),
    )
    async def login(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, data: JSONBody[LoginRequest]
    ) -> Response[TokenResponse | CookieTokenResponse]:
        """Returns a token pair; with `"cookie": true` the tokens are set as HttpOnly cookies."""
        note_auth_action(request, "sign_in")
        issued = await login_user(
            store=runtime.store,
            settings=runtime.settings,
            passwords=runtime.password_check,
            issuer=runtime.issuer,
            email=data.email,
            password=data.password,
            organization_id=data.organization_id,
            client=client_of(request, runtime),
        )
        return token_answer(runtime, issued, cookie=data.cookie)

    @post(
        "/refresh",
        summary="Exchange a refresh token for a new token pair",
        operation_class=OptionalBodyOperation,
        status_code=200,
        responses=error_answers(
            BAD_INPUT,
            (401, "invalid_refresh_token, refresh_token_reused, session_revoked, session_expired"),
            (403, "user_suspended, csrf_failed"),
            TOO_BIG,
            THROTTLED,
        ),
    )
    async def refresh(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[RefreshRequest | None] = None,
    ) -> Response[TokenResponse | CookieTokenResponse]:
        """The refresh token in the body, or the refresh cookie (then with X-CSRF-Token)."""
        note_auth_action(request, "refresh")
        token = data.refresh_token if data is not None else None
        via_cookie = token is None
        if via_cookie:
            presented = credentials_of(request, runtime)
            token = refresh_cookie(presented, runtime)
            if not token:
                raise MissingCredentials("Send a refresh token in the body or the refresh cookie.")
            require_csrf(presented, runtime)
        assert token is not None
        issued = await refresh_tokens(
            store=runtime.store,
            issuer=runtime.issuer,
            successor_key=runtime.refresh_key,
            reuse_grace=runtime.settings.refresh_reuse_grace,
            refresh_token=token,
            client=client_of(request, runtime),
        )
        return token_answer(runtime, issued, cookie=via_cookie)

    @post(
        "/logout",
        summary="End this session, or every session of the user",
        operation_class=OptionalBodyOperation,
        status_code=204,
        responses=error_answers(
            BAD_INPUT,
            (401, "missing_token, invalid_token, session_revoked, session_expired"),
            (403, "user_suspended, csrf_failed"),
            TOO_BIG,
            THROTTLED,
        ),
    )
    async def logout(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[LogoutRequest | None] = None,
    ) -> Response[None]:
        """`{"scope": "local"}` (default) or `{"scope": "global"}`; bearer token or cookies."""
        scope = data.scope if data is not None else "local"
        client = client_of(request, runtime)
        cleared = cleared_cookies(runtime.settings)
        presented = credentials_of(request, runtime)
        refresh = refresh_cookie(presented, runtime)
        try:
            token, via_cookie = access_credentials(presented, runtime)
            if via_cookie:
                require_csrf(presented, runtime)
            await logout_caller(
                runtime.store,
                access_token=token,
                ring=runtime.keys.ring,
                settings=runtime.settings,
                scope=scope,
                ip=client.ip,
            )
        except (MissingCredentials, InvalidToken, SessionRevoked, SessionExpired):
            # The access token is absent, bad (expired, signed by a pruned key, another
            # issuer) or of an ended session: it proves nothing and ends nothing. The refresh
            # cookie, the longer-lived credential that would sign the browser back in, ends its
            # own session (holding it is holding that session); without it, the refusal stands.
            if not refresh:
                raise
            require_csrf(presented, runtime)
            await logout_by_refresh_token(
                runtime.store, refresh_token=refresh, scope=scope, ip=client.ip
            )
        return Response(None, status_code=204, cookies=cleared)

    @post(
        "/switch-organization",
        summary="A new token pair for another organization of the caller's",
        status_code=200,
        responses=error_answers(
            (400, "refresh_token_required, invalid_request, duplicate_cookie"),
            (
                401,
                "missing_token, invalid_token, invalid_refresh_token, refresh_token_reused, "
                "session_revoked, session_expired",
            ),
            (403, "not_a_member, user_suspended, csrf_failed"),
            (409, "already_in_organization, refresh_token_rotated"),
            TOO_BIG,
            THROTTLED,
        ),
    )
    async def switch_organization(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[SwitchOrganizationRequest],
    ) -> Response[TokenResponse | CookieTokenResponse]:
        """Spends the session's refresh token for a session in that organization.

        Bearer (or the access cookie) says who asks; the refresh token in the body, or the
        refresh cookie with X-CSRF-Token, is required too. The answer goes where the refresh
        token came from: the body, or the cookies.
        """
        presented = credentials_of(request, runtime)
        token, access_via_cookie = access_credentials(presented, runtime)
        refresh = data.refresh_token
        refresh_via_cookie = refresh is None
        if refresh is None:
            refresh = refresh_cookie(presented, runtime)
        if refresh is None:
            raise RefreshTokenRequired(
                "Switching organization needs the session's refresh token as well: send "
                '{"organization_id", "refresh_token"} with the bearer token, or the refresh '
                "cookie with X-CSRF-Token."
            )
        if access_via_cookie or refresh_via_cookie:
            require_csrf(presented, runtime)
        issued = await switch_to(
            store=runtime.store,
            issuer=runtime.issuer,
            reuse_grace=runtime.settings.refresh_reuse_grace,
            access_token=token,
            refresh_token=refresh,
            organization_id=data.organization_id,
            client=client_of(request, runtime),
        )
        return token_answer(runtime, issued, cookie=refresh_via_cookie)

    @get(
        "/me",
        summary="The caller: user, memberships, current organization and session",
        responses=error_answers(
            (401, "missing_token, invalid_token, session_revoked"),
            (403, "user_suspended"),
            THROTTLED,
        ),
    )
    async def me(self, request: Request[Any, Any, Any], runtime: RuntimeDep) -> MeResponse:
        token, _ = access_credentials(credentials_of(request, runtime), runtime)
        me = await describe_token_holder(
            runtime.store, access_token=token, ring=runtime.keys.ring, settings=runtime.settings
        )

        def membership(view: Any) -> MeMembership:
            return MeMembership(view.organization_id, view.org_name, view.role)

        return MeResponse(
            user=MeUser(
                user_id=me.user.id,
                email=me.user.email,
                status=me.user.status,
                db_role=me.user.db_role,
                created_at=me.user.created_at.isoformat(),
                email_verified=me.user.email_verified_at is not None,
                email_verified_at=(
                    me.user.email_verified_at.isoformat() if me.user.email_verified_at else None
                ),
            ),
            memberships=[membership(m) for m in me.memberships],
            organization=membership(me.current) if me.current else None,
            session=MeSession(
                id=me.session.id,
                created_at=me.session.created_at.isoformat(),
                expires_at=me.session.expires_at.isoformat(),
            ),
        )
