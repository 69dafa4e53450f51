"""The error answers each /auth operation documents in the OpenAPI schema."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example

from gateway.web.auth.schemas import ErrorBody


def error_answers(*pairs: tuple[int, str]) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(
            data_container=ErrorBody,
            description=f"codes: {codes}",
            examples=[Example(value={"code": codes.split(", ")[0], "message": "…"})],
        )
        for status, codes in pairs
    }


BAD_INPUT = (400, "invalid_request")
TOO_BIG = (413, "payload_too_large")
THROTTLED = (429, "too_many_attempts, too_many_requests")


def gotrue_error_answers(*statuses: int) -> dict[int, ResponseSpec]:
    """The error answers of a /auth/v1 operation: GoTrue's body (see supabase_errors.py)."""
    from gateway.web.auth.supabase_schemas import GoTrueError

    return {
        status: ResponseSpec(
            data_container=GoTrueError,
            description="GoTrue's error body",
            examples=[Example(value={"code": status, "error_code": "…", "msg": "…"})],
        )
        for status in statuses
    }
