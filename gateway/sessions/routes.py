"""The /auth endpoints: thin handlers that parse, call the sessions package, and shape answers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import JSONBody
from msgspec import Meta

from gateway.client_address import client_address, parse_networks
from gateway.json_body import OptionalBodyOperation, require_json_content_type
from gateway.runtime import Runtime
from gateway.sessions import current
from gateway.sessions.cookies import (
    CSRF_HEADER,
    cleared_cookies,
    cookie_names,
    new_csrf_token,
    session_cookies,
)
from gateway.sessions.credentials import (
    Presented,
    access_token,
    check_csrf,
    cookie,
    read_credentials,
)
from gateway.sessions.errors import MissingCredentials, RefreshTokenRequired
from gateway.sessions.issuing import ClientInfo, IssuedTokens
from gateway.sessions.login import login as login_user
from gateway.sessions.refresh import refresh as refresh_tokens
from gateway.sessions.revocation import logout as logout_session
from gateway.sessions.revocation import session_of_refresh_token
from gateway.sessions.switching import switch_organization as switch_to
from gateway.store.ids import ID_MAX
from gateway.store.models import utcnow

PublicId = Annotated[int, Meta(ge=1, le=ID_MAX)]
RuntimeDep = NamedDependency[Runtime]
TOKEN_TYPE = "bearer"  # noqa: S105 - RFC 6750 token type, not a secret


# Requests. Unknown fields are refused (400) rather than ignored: a typo such as "organisation_id"
# must not silently sign the user into another organization.
class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(min_length=1, max_length=320, pattern=r"^[^\x00-\x1f\x7f]+$")]
    password: Annotated[str, Meta(min_length=1, max_length=1024)]
    organization_id: PublicId | None = None
    cookie: bool = False


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=128)] | None = None


class LogoutRequest(msgspec.Struct, forbid_unknown_fields=True):
    scope: Literal["local", "global"] = "local"


class SwitchOrganizationRequest(msgspec.Struct, forbid_unknown_fields=True):
    organization_id: PublicId
    # Required unless the refresh cookie is sent (then with X-CSRF-Token).
    refresh_token: Annotated[str, Meta(min_length=1, max_length=128)] | None = None


# Answers.
class TokenUser(msgspec.Struct):
    user_id: int
    email: str
    status: str
    role: str | None
    organization_id: int | None


class TokenOrganization(msgspec.Struct):
    org_name: str
    organization_id: int


class TokenResponse(msgspec.Struct):
    access_token: str
    token_type: str
    expires_in: int
    expires_at: int
    refresh_token: str
    user: TokenUser
    organization: TokenOrganization | None


class CookieTokenResponse(msgspec.Struct):
    """Cookie mode: the tokens are in HttpOnly cookies; the page keeps only the CSRF token."""

    token_type: str
    expires_in: int
    expires_at: int
    csrf_token: str
    user: TokenUser
    organization: TokenOrganization | None


class MeUser(msgspec.Struct):
    user_id: int
    email: str
    status: str
    db_role: str
    created_at: str


class MeMembership(msgspec.Struct):
    organization_id: int
    org_name: str
    role: str


class MeSession(msgspec.Struct):
    id: str
    created_at: str
    expires_at: str


class MeResponse(msgspec.Struct):
    user: MeUser
    memberships: list[MeMembership]
    organization: MeMembership | None
    session: MeSession


class ErrorBody(msgspec.Struct):
    code: str
    message: str


def _errors(*pairs: tuple[int, str]) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=ErrorBody,
            description=f"codes: {codes}",
            examples=[Example(value={"code": codes.split(", ")[0], "message": "…"})],
        )
        for status, codes in pairs
    }


_BAD_INPUT = (400, "invalid_request")
_TOO_BIG = (413, "payload_too_large")
_THROTTLED = (429, "too_many_attempts, too_many_requests")


def _token_user(issued: IssuedTokens) -> tuple[TokenUser, TokenOrganization | None]:
    identity = issued.identity
    user = TokenUser(
        user_id=identity.user_id,
        email=identity.email,
        status=identity.status,
        role=identity.org_role,
        organization_id=identity.organization_id,
    )
    organization = (
        TokenOrganization(org_name=identity.org_name, organization_id=identity.organization_id)
        if identity.organization_id is not None and identity.org_name is not None
        else None
    )
    return user, organization


def token_answer(
    runtime: Runtime, issued: IssuedTokens, *, cookie: bool
) -> Response[TokenResponse | CookieTokenResponse]:
    user, organization = _token_user(issued)
    headers = {"Cache-Control": "no-store"}  # RFC 6749 section 5.1: token answers are not cached
    if not cookie:
        body: TokenResponse | CookieTokenResponse = TokenResponse(
            access_token=issued.access_token,
            token_type=TOKEN_TYPE,
            expires_in=issued.expires_in,
            expires_at=issued.expires_at,
            refresh_token=issued.refresh_token,
            user=user,
            organization=organization,
        )
        return Response(body, headers=headers)
    csrf_token = new_csrf_token()
    body = CookieTokenResponse(
        token_type=TOKEN_TYPE,
        expires_in=issued.expires_in,
        expires_at=issued.expires_at,
        csrf_token=csrf_token,
        user=user,
        organization=organization,
    )
    cookies = session_cookies(
        runtime.settings,
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        csrf_token=csrf_token,
    )
    return Response(body, headers=headers, cookies=cookies)


def client_of(request: Request[Any, Any, Any], runtime: Runtime) -> ClientInfo:
    peer = request.client.host if request.client else None
    networks = parse_networks(tuple(runtime.settings.trusted_proxies))
    ip = client_address(peer, request.headers.getall("x-forwarded-for", []), networks)
    return ClientInfo(ip=ip, user_agent=request.headers.get("user-agent"))


def credentials_of(request: Request[Any, Any, Any], runtime: Runtime) -> Presented:
    """The request's credentials, read by the parser the /rest mount uses too."""
    names = cookie_names(runtime.settings)
    return read_credentials(request.scope["headers"], names.encoded, CSRF_HEADER.encode())


def access_credentials(presented: Presented, runtime: Runtime) -> tuple[str, bool]:
    """The access token and whether it came from the cookie (which then needs a CSRF check)."""
    found = access_token(presented, cookie_names(runtime.settings).access.encode())
    if found is None:
        raise MissingCredentials("Send an access token: Authorization: Bearer <token>.")
    return found


def refresh_cookie(presented: Presented, runtime: Runtime) -> str | None:
    return cookie(presented, cookie_names(runtime.settings).refresh.encode())


def require_csrf(presented: Presented, runtime: Runtime) -> None:
    check_csrf(presented, cookie_names(runtime.settings).csrf.encode())


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


class AuthController(Controller):
    path = "/auth"
    guards = [require_json_content_type]  # noqa: RUF012
    tags = ["auth"]  # noqa: RUF012 - Litestar reads these class attributes once
    dependencies = {"runtime": Provide(provide_runtime, sync_to_thread=False)}  # noqa: RUF012

    @post(
        "/login",
        summary="Sign in with email and password",
        status_code=200,
        responses=_errors(
            _BAD_INPUT,
            (401, "invalid_credentials"),
            (403, "user_suspended, not_a_member"),
            _TOO_BIG,
            _THROTTLED,
        ),
    )
    async def login(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, data: JSONBody[LoginRequest]
    ) -> Response[TokenResponse | CookieTokenResponse]:
        """Returns a token pair; with `"cookie": true` the tokens are set as HttpOnly cookies."""
        issued = await login_user(
            runtime,
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
        responses=_errors(
            _BAD_INPUT,
            (401, "invalid_refresh_token, refresh_token_reused, session_revoked, session_expired"),
            (403, "user_suspended, csrf_failed"),
            _TOO_BIG,
            _THROTTLED,
        ),
    )
    async def refresh(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[RefreshRequest | None] = None,
    ) -> Response[TokenResponse | CookieTokenResponse]:
        """The refresh token in the body, or the refresh cookie (then with X-CSRF-Token)."""
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
            runtime, refresh_token=token, client=client_of(request, runtime)
        )
        return token_answer(runtime, issued, cookie=via_cookie)

    @post(
        "/logout",
        summary="End this session, or every session of the user",
        operation_class=OptionalBodyOperation,
        status_code=204,
        responses=_errors(
            _BAD_INPUT,
            (401, "missing_token, invalid_token, session_revoked"),
            (403, "csrf_failed"),
            _TOO_BIG,
            _THROTTLED,
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
        try:
            token, via_cookie = access_credentials(presented, runtime)
        except MissingCredentials:
            # The access cookie expires long before the refresh cookie: a browser signing out
            # after an hour must still be able to end its session.
            refresh = refresh_cookie(presented, runtime)
            if not refresh:
                raise
            require_csrf(presented, runtime)
            async with runtime.sessions.begin() as db:
                session = await session_of_refresh_token(db, refresh)
                if session is not None and session.revoked_at is None:
                    await logout_session(db, session, scope=scope, ip=client.ip, now=utcnow())
            return Response(None, status_code=204, cookies=cleared)
        if via_cookie:
            require_csrf(presented, runtime)
        async with runtime.sessions.begin() as db:
            caller = await current.authenticate(db, runtime, token)
            await logout_session(db, caller.session, scope=scope, ip=client.ip, now=utcnow())
        return Response(None, status_code=204, cookies=cleared)

    @post(
        "/switch-organization",
        summary="A new token pair for another organization of the caller's",
        status_code=200,
        responses=_errors(
            (400, "refresh_token_required, invalid_request, duplicate_cookie"),
            (
                401,
                "missing_token, invalid_token, invalid_refresh_token, refresh_token_reused, "
                "session_revoked, session_expired",
            ),
            (403, "not_a_member, user_suspended, csrf_failed"),
            (409, "already_in_organization, refresh_token_rotated"),
            _TOO_BIG,
            _THROTTLED,
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
            runtime,
            access_token=token,
            refresh_token=refresh,
            organization_id=data.organization_id,
            client=client_of(request, runtime),
        )
        return token_answer(runtime, issued, cookie=refresh_via_cookie)

    @get(
        "/me",
        summary="The caller: user, memberships, current organization and session",
        responses=_errors(
            (401, "missing_token, invalid_token, session_revoked"),
            (403, "user_suspended"),
            _THROTTLED,
        ),
    )
    async def me(self, request: Request[Any, Any, Any], runtime: RuntimeDep) -> MeResponse:
        token, _ = access_credentials(credentials_of(request, runtime), runtime)
        async with runtime.sessions() as db:
            me = await current.describe_caller(db, await current.authenticate(db, runtime, token))

        def membership(view: Any) -> MeMembership:
            return MeMembership(view.organization_id, view.org_name, view.role)

        return MeResponse(
            user=MeUser(
                user_id=me.user.id,
                email=me.user.email,
                status=me.user.status,
                db_role=me.user.db_role,
                created_at=me.user.created_at.isoformat(),
            ),
            memberships=[membership(m) for m in me.memberships],
            organization=membership(me.current) if me.current else None,
            session=MeSession(
                id=me.session.id,
                created_at=me.session.created_at.isoformat(),
                expires_at=me.session.expires_at.isoformat(),
            ),
        )


def auth_rate_limit(settings: Any) -> RateLimitConfig:
    """Per-client-address limit on /auth/* (a second line behind the per-account lockout)."""
    networks = parse_networks(tuple(settings.trusted_proxies))

    def identify(request: Request[Any, Any, Any]) -> str:
        peer = request.client.host if request.client else None
        address = client_address(peer, request.headers.getall("x-forwarded-for", []), networks)
        return address or "unknown"

    def only_auth(request: Request[Any, Any, Any]) -> bool:
        return request.url.path.startswith("/auth/")

    return RateLimitConfig(
        rate_limit=("minute", settings.auth_rate_limit),
        identifier_for_request=identify,
        check_throttle_handler=only_auth,
        store="auth_rate_limit",
    )
