"""The platform admin API under /admin: users and organizations, for a bearer admin key."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import Parameter, QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts import (
    InvalidAdminKey,
    authorize_admin_key,
    delete_user,
    get_user_by_id,
    note_admin_key_use,
    search_organizations,
    search_users,
    set_user_status,
)
from gateway.sessions import bearer_token, read_credentials
from gateway.store import ID_MAX, AdminKey, User, record_event, utcnow
from gateway.tokens import InvalidToken
from gateway.web.auth.openapi import BAD_INPUT, THROTTLED, error_answers
from gateway.web.runtime import RuntimeDep

UserId = Annotated[int, Parameter(ge=1, le=ID_MAX)]
Query = Annotated[str | None, QueryParameter(name="q", max_length=320)]
Limit = Annotated[int, Parameter(ge=1, le=200)]
After = Annotated[int | None, Parameter(ge=0, le=ID_MAX)]

_KEY_REFUSED = (401, "invalid_admin_key")
_SCOPE_MISSING = (403, "admin_scope_missing")


class AdminUser(msgspec.Struct):
    user_id: int
    email: str
    status: str
    db_role: str
    email_verified: bool
    created_at: str


class AdminUsers(msgspec.Struct):
    users: list[AdminUser]
    next: int | None


class AdminOrganization(msgspec.Struct):
    organization_id: int
    org_name: str
    members: int


class AdminOrganizations(msgspec.Struct):
    organizations: list[AdminOrganization]
    next: int | None


def _user(user: User) -> AdminUser:
    return AdminUser(
        user_id=user.id,
        email=user.email,
        status=user.status,
        db_role=user.db_role,
        email_verified=user.email_verified_at is not None,
        created_at=user.created_at.isoformat(),
    )


async def _authorize(db: AsyncSession, request: Request[Any, Any, Any], scope: str) -> AdminKey:
    """The admin key the request carries, if it is live and holds ``scope`` (read only: the
    handler dates its use after its own work, so a search never runs inside a write)."""
    presented = read_credentials(request.scope["headers"], frozenset(), b"x-csrf-token")
    try:
        key = bearer_token(presented)
    except InvalidToken:
        key = None  # another scheme: the same answer as no key at all
    if key is None:
        raise InvalidAdminKey("Send an admin key: Authorization: Bearer <key>.")
    return await authorize_admin_key(db, key=key, scope=scope, now=utcnow())


def _audit(db: AsyncSession, key: AdminKey, event: str, **details: Any) -> None:
    note_admin_key_use(key, now=utcnow())
    user_id = details.pop("user_id", None)
    record_event(db, event, user_id=user_id, details={"admin_key_id": key.id, **details})


class AdminController(Controller):
    """Bearer admin keys only (no cookies, so no CSRF to check); every call is audited."""

    path = "/admin"
    tags = ["admin"]  # noqa: RUF012 - Litestar reads these class attributes once

    @get(
        "/users",
        summary="Users, searched by email, a page at a time",
        responses=error_answers(BAD_INPUT, _KEY_REFUSED, _SCOPE_MISSING, THROTTLED),
    )
    async def users(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        q: Query = None,
        limit: Limit = 50,
        after: After = None,
    ) -> AdminUsers:
        async with runtime.store.begin() as db:
            key = await _authorize(db, request, "users:read")
            found = await search_users(db, query=q, limit=limit, after=after)
            _audit(db, key, "admin_users_listed")
        page = [_user(user) for user in found]
        return AdminUsers(users=page, next=found[-1].id if len(found) == limit else None)

    @get(
        "/organizations",
        summary="Organizations, searched by name, a page at a time",
        responses=error_answers(BAD_INPUT, _KEY_REFUSED, _SCOPE_MISSING, THROTTLED),
    )
    async def organizations(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        q: Query = None,
        limit: Limit = 50,
        after: After = None,
    ) -> AdminOrganizations:
        async with runtime.store.begin() as db:
            key = await _authorize(db, request, "organizations:read")
            found = await search_organizations(db, query=q, limit=limit, after=after)
            _audit(db, key, "admin_organizations_listed")
        page = [AdminOrganization(org.id, org.name, members) for org, members in found]
        return AdminOrganizations(
            organizations=page, next=found[-1][0].id if len(found) == limit else None
        )

    @post(
        "/users/{user_id:int}/suspend",
        summary="Suspend a user: every session ends, the proxy refuses their tokens at once",
        status_code=200,
        responses=error_answers(_KEY_REFUSED, _SCOPE_MISSING, (404, "user_not_found"), THROTTLED),
    )
    async def suspend(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, user_id: UserId
    ) -> AdminUser:
        return await self._set_status(request, runtime, user_id, "suspended")

    @post(
        "/users/{user_id:int}/activate",
        summary="Activate a suspended user",
        status_code=200,
        responses=error_answers(_KEY_REFUSED, _SCOPE_MISSING, (404, "user_not_found"), THROTTLED),
    )
    async def activate(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, user_id: UserId
    ) -> AdminUser:
        return await self._set_status(request, runtime, user_id, "active")

    @delete(
        "/users/{user_id:int}",
        summary="Delete a user: sessions end, personal data is removed, audit ids stay",
        status_code=204,
        responses=error_answers(
            _KEY_REFUSED, _SCOPE_MISSING, (404, "user_not_found"), (409, "last_org_admin")
        ),
    )
    async def delete_user(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, user_id: UserId
    ) -> Response[None]:
        async with runtime.store.begin() as db:
            key = await _authorize(db, request, "users:write")
            await delete_user(db, user_id=user_id, now=utcnow())
            _audit(db, key, "admin_user_deleted", user_id=user_id)
        return Response(None, status_code=204)

    async def _set_status(
        self, request: Request[Any, Any, Any], runtime: RuntimeDep, user_id: int, status: str
    ) -> AdminUser:
        async with runtime.store.begin() as db:
            key = await _authorize(db, request, "users:write")
            user = await get_user_by_id(db=db, user_id=user_id)
            user = await set_user_status(db=db, email=user.email, status=status)
            _audit(db, key, "admin_user_status_set", user_id=user_id, status=status)
            return _user(user)
