"""What can go wrong with users, organizations and memberships."""

from __future__ import annotations

from gateway.errors import Conflict, GatewayError, InvalidInput, NotFound


class InvalidEmail(InvalidInput):
    code = "invalid_email"


class WeakPassword(InvalidInput):
    code = "weak_password"


class InvalidOrgRole(InvalidInput):
    code = "invalid_org_role"


class InvalidDbRole(InvalidInput):
    code = "invalid_db_role"


class InvalidOrganizationName(InvalidInput):
    code = "invalid_organization_name"


class EmailTaken(Conflict):
    code = "email_taken"


class OrganizationNameTaken(Conflict):
    code = "organization_name_taken"


class AlreadyAMember(Conflict):
    code = "already_a_member"


class NotAMember(NotFound):
    code = "not_a_member"


class UserNotFound(NotFound):
    code = "user_not_found"


class OrganizationNotFound(NotFound):
    code = "organization_not_found"


class LinkTokenRefused(InvalidInput):
    """A link token that cannot be spent: every reason (unknown, malformed, another purpose,
    expired, used, revoked) gives this one error with one message, so none is told apart."""

    code = "invalid_link_token"


class Forbidden(GatewayError):
    status = 403


class NotAnOrgAdmin(Forbidden):
    """Also the answer for an organization the caller does not belong to, or that does not
    exist: an outsider must not learn which organization ids are taken."""

    code = "not_org_admin"


class NotAnOrgMember(Forbidden):
    code = "not_a_member"


class OrganizationCreationClosed(Forbidden):
    code = "organization_creation_closed"


class SignupClosed(Forbidden):
    """GATEWAY_SIGNUP is closed or invite: nobody signs themselves up, whatever the email."""

    code = "signup_closed"


class LastOrgAdmin(Conflict):
    code = "last_org_admin"


class MemberNotFound(NotFound):
    code = "member_not_found"


class InvitationNotFound(NotFound):
    code = "invitation_not_found"


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"


class EmailAlreadyVerified(Conflict):
    code = "email_already_verified"
