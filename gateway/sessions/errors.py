"""What can go wrong when signing in, refreshing and signing out."""

from __future__ import annotations

from gateway.errors import GatewayError


class Unauthorized(GatewayError):
    status = 401


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"


class RefreshTokenReused(Unauthorized):
    code = "refresh_token_reused"


class SessionRevoked(Unauthorized):
    code = "session_revoked"


class SessionExpired(Unauthorized):
    code = "session_expired"


class MissingCredentials(Unauthorized):
    code = "missing_token"


class UserSuspended(GatewayError):
    code = "user_suspended"
    status = 403


class EmailNotVerified(GatewayError):
    code = "email_not_verified"
    status = 403


class NotAMember(GatewayError):
    code = "not_a_member"
    status = 403


class CsrfFailed(GatewayError):
    code = "csrf_failed"
    status = 403


class TooManyAttempts(GatewayError):
    code = "too_many_attempts"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class DuplicateCookie(GatewayError):
    code = "duplicate_cookie"
    status = 400


class DuplicateAuthorization(GatewayError):
    code = "duplicate_authorization"
    status = 400


class RefreshTokenRequired(GatewayError):
    code = "refresh_token_required"
    status = 400


class RefreshTokenRotated(GatewayError):
    code = "refresh_token_rotated"
    status = 409


class AlreadyInOrganization(GatewayError):
    code = "already_in_organization"
    status = 409
