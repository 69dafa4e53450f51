"""``POST /storage/presign``: presigned object URLs for the caller, verified as /auth/me is."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, post
from litestar.params import JSONBody

from gateway.sessions import describe_token_holder
from gateway.storage import Grantee, StorageNotConfigured, presign
from gateway.web.auth.callers import access_credentials, credentials_of, require_csrf
from gateway.web.auth.openapi import THROTTLED, TOO_BIG, error_answers
from gateway.web.json_body import require_json_content_type
from gateway.web.runtime import RuntimeDep


class PresignRequest(msgspec.Struct, forbid_unknown_fields=True):
    bucket: str
    operation: str
    # Checked one by one (not typed list[str]): a bad key is refused naming its index.
    keys: list[Any]
    expires_in: int | None = None
    content_type: str | None = None


class PresignedUrlAnswer(msgspec.Struct, omit_defaults=True):
    key: str
    url: str
    method: str
    expires_at: str
    fields: dict[str, str] | None = None


class PresignResponse(msgspec.Struct):
    urls: list[PresignedUrlAnswer]


class StorageController(Controller):
    path = "/storage"
    guards = [require_json_content_type]  # noqa: RUF012
    tags = ["storage"]  # noqa: RUF012 - Litestar reads these class attributes once

    @post(
        "/presign",
        summary="Presigned URLs for objects in the caller's part of a bucket",
        status_code=200,
        responses=error_answers(
            (400, "invalid_request, invalid_key, unknown_bucket"),
            (401, "missing_token, invalid_token, session_revoked"),
            (
                403,
                "user_suspended, csrf_failed, no_organization, operation_not_allowed, "
                "key_not_allowed",
            ),
            (404, "storage_not_configured"),
            TOO_BIG,
            THROTTLED,
        ),
    )
    async def presign(
        self,
        request: Request[Any, Any, Any],
        runtime: RuntimeDep,
        data: JSONBody[PresignRequest],
    ) -> PresignResponse:
        """Bearer token, or the access cookie with X-CSRF-Token; URLs in the order of `keys`."""
        presented = credentials_of(request, runtime)
        token, via_cookie = access_credentials(presented, runtime)
        if via_cookie:
            require_csrf(presented, runtime)
        # The session and the user are read from the store, exactly as for /auth/me.
        me = await describe_token_holder(
            runtime.store, access_token=token, ring=runtime.keys.ring, settings=runtime.settings
        )
        if runtime.storage is None:
            raise StorageNotConfigured("No buckets are configured (GATEWAY_STORAGE_CONFIG).")
        current = me.current
        grantee = Grantee(
            user_id=me.user.id,
            organization_id=current.organization_id if current else None,
            role=current.role if current else None,
        )
        urls = presign(
            runtime.storage,
            grantee=grantee,
            bucket=data.bucket,
            operation=data.operation,
            keys=data.keys,
            expires_in=data.expires_in,
            content_type=data.content_type,
        )
        return PresignResponse(
            urls=[PresignedUrlAnswer(u.key, u.url, u.method, u.expires_at, u.fields) for u in urls]
        )
