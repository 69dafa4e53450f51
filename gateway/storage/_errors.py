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
