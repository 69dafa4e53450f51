"""Token answers: the JSON body, or in cookie mode the cookies and the CSRF token."""

from __future__ import annotations

from litestar import Response

from gateway.sessions import IssuedTokens
from gateway.web.auth.cookies import (
    new_csrf_token,
    session_cookies,
)
from gateway.web.auth.schemas import (
    TOKEN_TYPE,
    CookieTokenResponse,
    TokenOrganization,
    TokenResponse,
    TokenUser,
)
from gateway.web.runtime import Runtime


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
