"""Self sign-up: one answer for a new and a known email, and a mail to the address either way."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.accounts.errors import InvalidDbRole, SignupClosed
from gateway.accounts.link_tokens import issue_link_token
from gateway.accounts.memberships import add_membership
from gateway.accounts.organizations import (
    check_organization_name_free,
    clean_organization_name,
    create_organization,
)
from gateway.accounts.passwords import PasswordHashing, check_password_policy
from gateway.accounts.users import insert_user, normalize_email
from gateway.mail import Mailer, MailMessage
from gateway.settings import Settings
from gateway.store import User, record_event, utcnow

SIGNUP_CLOSED = "Sign-up is closed on this gateway; ask its operator for an account."
SIGNUP_BY_INVITATION = (
    "Sign-up is by invitation only: ask an organization's admin to invite you, "
    "then follow the link in the invitation mail."
)


def signup_refusal(mode: str) -> SignupClosed | None:
    """Whether GATEWAY_SIGNUP lets anyone sign themselves up; decided before the body is read.

    ``invite`` answers like ``closed`` (403 ``signup_closed``) with a message pointing to
    invitations: an invited address gets its account by accepting the invitation, not here.
    """
    if mode == "open":
        return None
    return SignupClosed(SIGNUP_BY_INVITATION if mode == "invite" else SIGNUP_CLOSED)


async def sign_up(
    *,
    store: async_sessionmaker[AsyncSession],
    passwords: PasswordHashing,
    mailer: Mailer,
    settings: Settings,
    email: str,
    password: str,
    organization_name: str | None,
    ip: str | None,
) -> None:
    """Create an unverified account (and its organization) and mail a verification link.

    An email that already has an account gets the same answer after the same work: the
    password is hashed once in both cases (outside any transaction, as sign-in verifies), one
    transaction commits, one mail is sent: to a new address the verification link, to a known
    one a note that someone tried (no account, no organization, no token is made, and nothing
    of the existing account changes, so nobody can take over an address they do not read).

    Every refusal comes before anything is written: the mode, then mail (503
    ``mail_not_configured``), then the input (email, password policy, organization name and
    whether that name is free, checked for known emails too so the answer does not differ).
    A mail server that fails afterwards gives 503 ``mail_unavailable`` in both cases; a new
    account then stays, unverified (see docs/security.md).
    """
    refusal = signup_refusal(settings.signup)
    if refusal is not None:
        raise refusal
    mailer.require_mail()
    display_email, email_key = normalize_email(email)
    check_password_policy(password, min_length=settings.password_min_length)
    org_name = clean_organization_name(organization_name) if organization_name else None
    if settings.authenticated_role not in settings.allowed_roles:
        raise InvalidDbRole("GATEWAY_AUTHENTICATED_ROLE is not in GATEWAY_ALLOWED_ROLES.")
    password_hash = await passwords.hash(password)
    # A concurrent sign-up with the same email or organization name can win the unique index
    # between our look-up and our insert; the second pass sees its row and answers as for it.
    for last_try in (False, True):
        try:
            async with store.begin() as db:
                message = await _record_sign_up(
                    db,
                    settings=settings,
                    display_email=display_email,
                    email_key=email_key,
                    password_hash=password_hash,
                    org_name=org_name,
                    ip=ip,
                )
            break
        except IntegrityError:
            if last_try:
                raise
    await mailer.send(message)


async def _record_sign_up(
    db: AsyncSession,
    *,
    settings: Settings,
    display_email: str,
    email_key: str,
    password_hash: str,
    org_name: str | None,
    ip: str | None,
) -> MailMessage:
    """The sign-up's writes, in the caller's transaction; the mail to send once it commits."""
    now = utcnow()
    existing = await db.scalar(select(User).where(User.email_normalized == email_key))
    if existing is not None:
        if org_name is not None:
            await check_organization_name_free(db, org_name)
        record_event(db, "signup_existing_email", user_id=existing.id, ip=ip)
        return MailMessage(kind="signup_attempt_on_existing_account", to=existing.email)

    organization = await create_organization(db=db, name=org_name) if org_name else None
    user = await insert_user(
        db,
        display_email=display_email,
        email_key=email_key,
        password_hash=password_hash,
        db_role=settings.authenticated_role,
        email_verified=False,
    )
    if organization is not None:
        await add_membership(db=db, user=user, organization_id=organization.id, role="org_admin")
    token = await issue_link_token(
        db,
        purpose="verify_email",
        email=display_email,
        ttl=settings.verify_email_ttl,
        now=now,
        user_id=user.id,
    )
    record_event(
        db,
        "user_signed_up",
        user_id=user.id,
        ip=ip,
        details={"organization_id": organization.id} if organization is not None else None,
    )
    return MailMessage(
        kind="verify_email", to=display_email, token=token, expires_in=settings.verify_email_ttl
    )
