"""The organization, member and invitation endpoints: authenticate, call one domain function."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import JSONBody, Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts import (
    MAX_PAGE,
    create_own_organization,
    invite,
    leave_organization,
    list_invitations,
    list_members,
    list_organizations,
    remove_member,
    rename_organization,
    revoke_invitation,
    set_member_role,
)
from gateway.errors import InvalidInput
from gateway.sessions import accept_invitation, authenticate
from gateway.store import ID_MAX, User, utcnow
from gateway.web.auth.answers import token_answer
from gateway.web.auth.callers import (
    access_credentials,
    client_of,
    credentials_of,
    require_csrf,
)
from gateway.web.auth.openapi import BAD_INPUT, THROTTLED, TOO_BIG, error_answers
from gateway.web.auth.org_schemas import (
    AcceptInvitationRequest,
    InvitationItem,
    InvitationList,
    InvitationRequest,
    MemberItem,
    MemberList,
    MemberRoleRequest,
    OrganizationAnswer,
    OrganizationItem,
    OrganizationList,
    OrganizationNameRequest,
)
from gateway.web.auth.schemas import CookieTokenResponse, TokenResponse
from gateway.web.json_body import require_json_content_type
from gateway.web.runtime import Runtime, RuntimeDep

UNAUTHENTICATED = (401, "missing_token, invalid_token, session_revoked, session_expired")
NOT_ADMIN = (403, "not_org_admin, user_suspended, csrf_failed")
OrgId = Parameter(int, ge=1, le=ID_MAX)


class PasswordRequired(InvalidInput):
    code = "password_required"


async def signed_in(
    db: AsyncSession, request: Request[Any, Any, Any], runtime: Runtime, *, unsafe: bool = True
) -> User:
    """The calling user, checked like /auth/me; a cookie-authenticated change needs CSRF."""
    presented = credentials_of(request, runtime)
    token, via_cookie = access_credentials(presented, runtime)
    if via_cookie and unsafe:
        require_csrf(presented, runtime)
    caller = await authenticate(db, token=token, ring=runtime.keys.ring, settings=runtime.settings)
    return caller.user


class OrganizationsController(Controller):
    path = "/auth"
    guards = [require_json_content_type]  # noqa: RUF012
    tags = ["organizations"]  # noqa: RUF012 - Litestar reads these class attributes once

    @get(
        "/organizations",
        summary="The caller's organizations and their role in each",
        responses=error_answers(UNAUTHENTICATED, (403, "user_suspended"), THROTTLED),
    )
    async def mine(self, request: Request[Any, Any, Any], runtime: RuntimeDep) -> OrganizationList:
        async with runtime.store() as db:
            user = await signed_in(db, request, runtime, unsafe=False)
            found = await list_organizations(db, user_id=user.id)
        return OrganizationList(
            [OrganizationItem(o.organization_id, o.org_name, o.role or "") for o in found]
        )

    @post(
        "/organizations",
        summary="Create an organization; the caller becomes its org_admin",
        status_code=201,
        responses=error_answers(
            (400, "invalid_request, invalid_organization_name"),
            UNAUTHENTICATED,
            (403, "organization_creation_closed, user_suspended, csrf_failed"),
            (409, "organization_name_taken"),
            TOO_BIG,
            THROTTLED,
        ),
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[OrganizationNameRequest],
    ) -> OrganizationAnswer:
        async with runtime.store.begin() as db:
            user = await signed_in(db, request, runtime)
            made = await create_own_organization(
                db, user=user, name=data.name, settings=runtime.settings
            )
        return OrganizationAnswer(made.organization_id, made.org_name)

    @patch(
        "/organizations/{organization_id:int}",
        summary="Rename an organization (org_admin)",
        responses=error_answers(
            (400, "invalid_request, invalid_organization_name"),
            UNAUTHENTICATED,
            NOT_ADMIN,
            (409, "organization_name_taken"),
            TOO_BIG,
            THROTTLED,
        ),
    )
    async def rename(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[OrganizationNameRequest],
        organization_id: int = OrgId,
    ) -> OrganizationAnswer:
        async with runtime.store.begin() as db:
            user = await signed_in(db, request, runtime)
            renamed = await rename_organization(
                db, organization_id=organization_id, name=data.name, actor_id=user.id
            )
        return OrganizationAnswer(renamed.organization_id, renamed.org_name)

    @get(
        "/organizations/{organization_id:int}/members",
        summary="One page of the organization's members, by user id (org_admin)",
        responses=error_answers(
            (400, "invalid_cursor, invalid_request"), UNAUTHENTICATED, NOT_ADMIN, THROTTLED
        ),
    )
    async def members(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        organization_id: int = OrgId,
        limit: Annotated[int, Parameter(ge=1, le=MAX_PAGE)] = 50,
        cursor: Annotated[str | None, Parameter(max_length=32)] = None,
    ) -> MemberList:
        """`next` is present when there are more: pass it as `cursor` for the next page."""
        async with runtime.store() as db:
            user = await signed_in(db, request, runtime, unsafe=False)
            page = await list_members(
                db, organization_id=organization_id, actor_id=user.id, limit=limit, cursor=cursor
            )
        return MemberList(
            [MemberItem(m.user_id, m.email, m.role) for m in page.members], next=page.next
        )

    @patch(
        "/organizations/{organization_id:int}/members/{user_id:int}",
        summary="Change a member's org role (org_admin); lowering ends their sessions there",
        responses=error_answers(
            BAD_INPUT,
            UNAUTHENTICATED,
            NOT_ADMIN,
            (404, "member_not_found"),
            (409, "last_org_admin"),
            TOO_BIG,
            THROTTLED,
        ),
    )
    async def set_role(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[MemberRoleRequest],
        organization_id: int = OrgId,
        user_id: int = Parameter(int, ge=1, le=ID_MAX),
    ) -> MemberItem:
        async with runtime.store.begin() as db:
            actor = await signed_in(db, request, runtime)
            member = await set_member_role(
                db,
                organization_id=organization_id,
                user_id=user_id,
                role=data.role,
                actor_id=actor.id,
                now=utcnow(),
            )
        return MemberItem(member.user_id, member.email, member.role)

    @delete(
        "/organizations/{organization_id:int}/members/{user_id:int}",
        summary="Remove a member (org_admin); their sessions in the organization end",
        status_code=204,
        responses=error_answers(
            UNAUTHENTICATED,
            NOT_ADMIN,
            (404, "member_not_found"),
            (409, "last_org_admin"),
            THROTTLED,
        ),
    )
    async def remove(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        organization_id: int = OrgId,
        user_id: int = Parameter(int, ge=1, le=ID_MAX),
    ) -> None:
        async with runtime.store.begin() as db:
            actor = await signed_in(db, request, runtime)
            await remove_member(
                db,
                organization_id=organization_id,
                user_id=user_id,
                actor_id=actor.id,
                now=utcnow(),
            )

    @post(
        "/organizations/{organization_id:int}/leave",
        summary="Leave an organization; the caller's sessions in it end",
        status_code=204,
        responses=error_answers(
            UNAUTHENTICATED,
            (403, "not_a_member, user_suspended, csrf_failed"),
            (409, "last_org_admin"),
            THROTTLED,
        ),
    )
    async def leave(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, organization_id: int = OrgId
    ) -> None:
        async with runtime.store.begin() as db:
            user = await signed_in(db, request, runtime)
            await leave_organization(
                db, organization_id=organization_id, user_id=user.id, now=utcnow()
            )

    @post(
        "/organizations/{organization_id:int}/invitations",
        summary="Invite an address to the organization by mail (org_admin)",
        status_code=201,
        responses=error_answers(
            (400, "invalid_request, invalid_email"),
            UNAUTHENTICATED,
            NOT_ADMIN,
            (409, "already_a_member"),
            TOO_BIG,
            THROTTLED,
            (503, "mail_not_configured, mail_unavailable"),
        ),
    )
    async def invite(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[InvitationRequest],
        organization_id: int = OrgId,
    ) -> InvitationItem:
        async with runtime.store() as db:
            actor = await signed_in(db, request, runtime)
        sent = await invite(
            store=runtime.store,
            mailer=runtime.mailer,
            organization_id=organization_id,
            email=data.email,
            role=data.role,
            actor_id=actor.id,
            ttl=runtime.settings.invitation_ttl,
        )
        found = sent.invitation
        return InvitationItem(
            found.invitation_id, found.email, found.role, found.expires_at.isoformat()
        )

    @get(
        "/organizations/{organization_id:int}/invitations",
        summary="The organization's pending invitations (org_admin)",
        responses=error_answers(UNAUTHENTICATED, NOT_ADMIN, THROTTLED),
    )
    async def invitations(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, organization_id: int = OrgId
    ) -> InvitationList:
        async with runtime.store() as db:
            actor = await signed_in(db, request, runtime, unsafe=False)
            pending = await list_invitations(
                db, organization_id=organization_id, actor_id=actor.id, now=utcnow()
            )
        return InvitationList(
            [
                InvitationItem(i.invitation_id, i.email, i.role, i.expires_at.isoformat())
                for i in pending
            ]
        )

    @delete(
        "/organizations/{organization_id:int}/invitations/{invitation_id:str}",
        summary="Withdraw a pending invitation (org_admin)",
        status_code=204,
        responses=error_answers(
            UNAUTHENTICATED, NOT_ADMIN, (404, "invitation_not_found"), THROTTLED
        ),
    )
    async def revoke(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        invitation_id: str = Parameter(str, max_length=64),
        organization_id: int = OrgId,
    ) -> None:
        async with runtime.store.begin() as db:
            actor = await signed_in(db, request, runtime)
            await revoke_invitation(
                db,
                organization_id=organization_id,
                invitation_id=invitation_id,
                actor_id=actor.id,
                now=utcnow(),
            )

    @post(
        "/invitations/accept",
        summary="Accept an invitation: join the organization and sign in to it",
        status_code=200,
        responses=error_answers(
            (400, "invalid_link_token, password_required, weak_password, invalid_request"),
            (401, "invalid_credentials"),
            (403, "user_suspended, signup_closed"),
            TOO_BIG,
            THROTTLED,
        ),
    )
    async def accept(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[AcceptInvitationRequest],
    ) -> Response[TokenResponse | CookieTokenResponse]:
        """The token from the mail's link and a password: a new account's, or the account's."""
        if data.password is None:
            raise PasswordRequired(
                "Send a password: the new account's, or your account's if you have one."
            )
        issued = await accept_invitation(
            store=runtime.store,
            settings=runtime.settings,
            passwords=runtime.password_check,
            issuer=runtime.issuer,
            token=data.token,
            password=data.password,
            client=client_of(request, runtime),
        )
        return token_answer(runtime, issued, cookie=data.cookie)
