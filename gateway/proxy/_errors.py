"""What the PostgREST mount refuses before anything goes upstream, one type per answer."""

from __future__ import annotations

from gateway.errors import GatewayError


class PathNotMounted(GatewayError):
    """The decoded path is under the prefix but the raw one is not (``/r%65st/x``)."""

    code = "not_found"
    status = 404


class InvalidPath(GatewayError):
    code = "invalid_path"
    status = 400


class InvalidQuery(GatewayError):
    code = "invalid_query"
    status = 400


class QueryTooLong(GatewayError):
    code = "uri_too_long"
    status = 414


class MethodNotServed(GatewayError):
    code = "method_not_allowed"
    status = 405


class BadHost(GatewayError):
    code = "invalid_host"
    status = 400


class HeadersTooLarge(GatewayError):
    code = "request_header_fields_too_large"
    status = 431


class ProfileNotAllowed(GatewayError):
    code = "schema_not_allowed"
    status = 406


class InvalidPresign(GatewayError):
    code = "invalid_request"
    status = 400
