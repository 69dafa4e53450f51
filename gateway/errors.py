"""The gateway's error type: each failure carries a snake_case code, a sentence, a status."""

from __future__ import annotations

from typing import ClassVar


class GatewayError(Exception):
    """Base of every error the gateway reports to a client or an operator.

    Subclasses fix ``code`` and ``status``; the message is a human sentence that never holds a
    secret. The web layer's exception handlers and the PostgREST mount answer these with
    :func:`error_document`.
    """

    code: ClassVar[str] = "gateway_error"
    status: ClassVar[int] = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def error_document(*, code: str, message: str) -> dict[str, str]:
    """The body of every error answer the gateway gives, whichever layer answers."""
    return {"code": code, "message": message}


class InvalidInput(GatewayError):
    code = "invalid_input"
    status = 400


class NotFound(GatewayError):
    code = "not_found"
    status = 404


class Conflict(GatewayError):
    code = "conflict"
    status = 409


class StoreUnavailable(GatewayError):
    code = "store_unavailable"
    status = 503
