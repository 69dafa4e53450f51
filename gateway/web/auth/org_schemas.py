"""The bodies of the organization, member and invitation endpoints (msgspec structs)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

OrgRole = Literal["org_admin", "org_client"]
OrgName = Annotated[str, Meta(min_length=1, max_length=200)]
Email = Annotated[str, Meta(min_length=1, max_length=320, pattern=r"^[^\x00-\x1f\x7f]+$")]


class OrganizationNameRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: OrgName


class MemberRoleRequest(msgspec.Struct, forbid_unknown_fields=True):
    role: OrgRole


class InvitationRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    role: OrgRole


class AcceptInvitationRequest(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=1, max_length=128)]
    # Required in practice (400 password_required without it): it sets a new account's
    # password, or proves an existing account's; optional here only so that its absence gets
    # that one answer, whichever the address is.
    password: Annotated[str, Meta(min_length=1, max_length=1024)] | None = None
    cookie: bool = False


class OrganizationItem(msgspec.Struct):
    organization_id: int
    org_name: str
    role: str


class OrganizationList(msgspec.Struct):
    organizations: list[OrganizationItem]


class OrganizationAnswer(msgspec.Struct):
    organization_id: int
    org_name: str


class MemberItem(msgspec.Struct):
    user_id: int
    email: str
    role: str


class MemberList(msgspec.Struct, omit_defaults=True):
    members: list[MemberItem]
    next: str | None = None


class InvitationItem(msgspec.Struct):
    invitation_id: str
    email: str
    role: str
    expires_at: str


class InvitationList(msgspec.Struct):
    invitations: list[InvitationItem]
