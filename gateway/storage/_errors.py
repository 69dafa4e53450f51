"""What storage refuses: each a GatewayError with its code and status."""

from __future__ import annotations

from gateway.errors import GatewayError


class StorageConfigError(GatewayError):
    """GATEWAY_STORAGE_CONFIG is unreadable or invalid; the message is one line naming where."""

    code = "invalid_storage_config"
    status = 500


class StorageNotConfigured(GatewayError):
    code = "storage_not_configured"
    status = 404


class UnknownBucket(GatewayError):
    code = "unknown_bucket"
    status = 400


class InvalidKey(GatewayError):
    """A key that is no object key: empty, too long, a control character, a ``.`` segment."""

    code = "invalid_key"
    status = 400


class InvalidPresignRequest(GatewayError):
    code = "invalid_request"
    status = 400


class KeyOutsidePrefix(GatewayError):
    code = "key_not_allowed"
    status = 403


class OperationNotAllowed(GatewayError):
    code = "operation_not_allowed"
    status = 403


class NoOrganization(GatewayError):
    code = "no_organization"
    status = 403


class TooManyRows(GatewayError):
    """A ``Presign``'d answer with more rows than GATEWAY_STORAGE_MAX_ROWS: the caller pages."""

    code = "too_many_rows"
    status = 400


class AnswerTooLarge(GatewayError):
    """A ``Presign``'d answer over the input or output cap: the caller asks for less."""

    code = "answer_too_large"
    status = 400


class PresignFailed(GatewayError):
    """A 2xx JSON answer the header asked to enrich that is no array of objects: never passed on
    un-enriched, so a ``<column>_url`` a row holds cannot pass for the gateway's."""

    code = "presign_failed"
    status = 502
