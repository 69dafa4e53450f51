"""Invitations to an organization: send one by mail, list the pending ones, withdraw one."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.accounts._access import claim_organization, refused_for, require_org_admin
from gateway.accounts.errors import AlreadyAMember, InvitationNotFound
from gateway.accounts.link_tokens import hash_link_token, issue_link_token
from gateway.accounts.memberships import check_org_role
from gateway.accounts.users import normalize_email
from gateway.mail import Mailer, MailMessage, MailUnavailable
from gateway.store import LinkToken, Membership, Organization, User, record_event, utcnow


@dataclass(frozen=True, slots=True)
class InvitationView:
    invitation_id: str
    email: str
    role: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SentInvitation:
    invitation: InvitationView
    #: The link in the mail, with its token: for the CLI to print in dev mode, nowhere else.
    link: str


def invitation_id_of(token_hash: str) -> str:
    """The invitation's public id: derived from the stored hash, one-way, never the token.

    Neither the token nor its stored hash can be computed from it, so an id seen in a list or
    an audit record spends nothing and finds no row by itself.
    """
    return "inv_" + hashlib.sha256(b"invitation-id:" + token_hash.encode()).hexdigest()[:32]


def _pending(organization_id: int, now: datetime) -> list[ColumnElement[bool]]:
    return [
        LinkToken.purpose == "invitation",
        LinkToken.organization_id == organization_id,
        LinkToken.used_at.is_(None),
        LinkToken.revoked_at.is_(None),
        LinkToken.expires_at > now,
    ]


def _view(row: LinkToken) -> InvitationView:
    assert row.role is not None
    return InvitationView(invitation_id_of(row.token_hash), row.email, row.role, row.expires_at)


async def _refuse_member(
    db: AsyncSession, organization_id: int, email_key: str, display_email: str
) -> None:
    member = await db.scalar(
        select(Membership.user_id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.organization_id == organization_id, User.email_normalized == email_key)
    )
    if member is not None:
        raise AlreadyAMember(f"{display_email} is already a member of this organization.")


async def invite(
    *,
    store: async_sessionmaker[AsyncSession],
    mailer: Mailer,
    organization_id: int,
    email: str,
    role: str,
    actor_id: int | None,
    ttl: int,
) -> SentInvitation:
    """Invite ``email`` to the organization as ``role`` and mail them the link.

    The answer is the same whether the address has an account or not (only an address that is
    already a member is refused, which an org_admin sees in the member list anyway). A new
    invitation withdraws the address's older pending ones to this organization. The mail goes
    after the commit, so no lock is held while the mail server talks; if it cannot be sent the
    invitation is withdrawn again and the answer is 503.
    """
    mailer.require_mail()
    check_org_role(role)
    display_email, email_key = normalize_email(email)
    now = utcnow()
    async with store.begin() as db:
        if not await claim_organization(db, organization_id):
            raise refused_for(actor_id, organization_id)
        await require_org_admin(db, organization_id=organization_id, actor_id=actor_id)
        organization = await db.get(Organization, organization_id)
        assert organization is not None
        await _refuse_member(db, organization_id, email_key, display_email)
        await _withdraw(db, organization_id=organization_id, now=now, email_key=email_key)
        token = await issue_link_token(
            db,
            purpose="invitation",
            email=display_email,
            ttl=ttl,
            now=now,
            organization_id=organization_id,
            role=role,
            created_by=actor_id,
        )
        row = await db.get(LinkToken, hash_link_token(token))
        assert row is not None
        view = _view(row)
        record_event(
            db,
            "invitation_created",
            user_id=actor_id,
            details={"organization_id": organization_id, "role": role, "id": view.invitation_id},
        )
    message = MailMessage(
        kind="invitation",
        to=display_email,
        token=token,
        expires_in=ttl,
        organization_name=organization.name,
    )
    await _send_or_withdraw(store, mailer, message, organization_id, email_key)
    return SentInvitation(invitation=view, link=mailer.link_for(message))


async def _send_or_withdraw(
    store: async_sessionmaker[AsyncSession],
    mailer: Mailer,
    message: MailMessage,
    organization_id: int,
    email_key: str,
) -> None:
    """An invitation whose mail cannot go out is withdrawn: nobody holds its link."""
    try:
        await mailer.send(message)
    except MailUnavailable:
        async with store.begin() as db:
            await _withdraw(db, organization_id=organization_id, now=utcnow(), email_key=email_key)
        raise


async def _withdraw(
    db: AsyncSession,
    *,
    organization_id: int,
    now: datetime,
    email_key: str | None = None,
    token_hash: str | None = None,
) -> int:
    conditions = _pending(organization_id, now)
    if email_key is not None:
        conditions.append(LinkToken.email == email_key)
    if token_hash is not None:
        conditions.append(LinkToken.token_hash == token_hash)
    result = await db.execute(
        update(LinkToken)
        .where(*conditions)
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount


async def list_invitations(
    db: AsyncSession, *, organization_id: int, actor_id: int | None, now: datetime
) -> list[InvitationView]:
    """The organization's pending invitations (not expired, used or withdrawn), oldest first."""
    await require_org_admin(db, organization_id=organization_id, actor_id=actor_id)
    rows = await db.scalars(
        select(LinkToken)
        .where(*_pending(organization_id, now))
        .order_by(LinkToken.created_at, LinkToken.token_hash)
    )
    return [_view(row) for row in rows]


async def revoke_invitation(
    db: AsyncSession,
    *,
    organization_id: int,
    invitation_id: str,
    actor_id: int | None,
    now: datetime,
) -> None:
    """Withdraw one pending invitation: its link is refused from now on."""
    await require_org_admin(db, organization_id=organization_id, actor_id=actor_id)
    hashes = await db.scalars(select(LinkToken.token_hash).where(*_pending(organization_id, now)))
    # The pending invitations of one organization are few: each id is derived and compared in
    # constant time rather than kept in a column of its own.
    match = next(
        (
            h
            for h in hashes
            if hmac.compare_digest(invitation_id_of(h).encode(), invitation_id.encode())
        ),
        None,
    )
    if match is None or not await _withdraw(
        db, organization_id=organization_id, now=now, token_hash=match
    ):
        raise InvitationNotFound("There is no pending invitation with that id.")
    record_event(
        db,
        "invitation_revoked",
        user_id=actor_id,
        details={"organization_id": organization_id, "id": invitation_id},
    )
