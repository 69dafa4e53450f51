"""What can go wrong with users, organizations and memberships."""

from __future__ import annotations

from gateway.errors import Conflict, InvalidInput, NotFound


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
