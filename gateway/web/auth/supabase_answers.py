"""GoTrue-shaped answers built from what the sessions package says about a caller."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from litestar import Response

from gateway.sessions import IssuedTokens, describe_token_holder
from gateway.settings import Settings
from gateway.store import utcnow
from gateway.tokens import Identity as TokenIdentity
from gateway.web.auth.schemas import TOKEN_TYPE
from gateway.web.auth.supabase_schemas import Identity, Session, SignupUser, User
from gateway.web.runtime import Runtime

logger = logging.getLogger("gateway.auth")

#: The one provider there is: email and password.
PROVIDER = {"provider": "email", "providers": ["email"]}


def _time(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def supabase_user(me: Any, settings: Settings) -> User:
    """GoTrue's user object for the caller ``describe_token_holder`` described."""
    user = me.user
    uid = str(user.id)
    verified = _time(user.email_verified_at)
    signed_in = _time(me.session.created_at)
    created, updated = user.created_at.isoformat(), user.updated_at.isoformat()
    organization = (
        {
            "organization_id": me.current.organization_id,
            "org_name": me.current.org_name,
            "role": me.current.role,
        }
        if me.current is not None
        else None
    )
    return User(
        id=uid,
        aud=settings.audience or "",
        role=user.db_role,
        email=user.email,
        email_confirmed_at=verified,
        phone="",
        confirmed_at=verified,
        last_sign_in_at=signed_in,
        app_metadata={
            **PROVIDER,
            "organization": organization,
            "organizations": [
                {"organization_id": m.organization_id, "org_name": m.org_name, "role": m.role}
                for m in me.memberships
            ],
        },
        user_metadata={},
        identities=[
            Identity(
                id=uid,
                user_id=uid,
                identity_id=uid,
                provider="email",
                identity_data={"sub": uid, "email": user.email, "email_verified": bool(verified)},
                created_at=created,
                updated_at=updated,
                last_sign_in_at=signed_in,
            )
        ],
        created_at=created,
        updated_at=updated,
        is_anonymous=False,
    )


async def caller_user(runtime: Runtime, access_token: str) -> User:
    """The holder of ``access_token``, checked like any request with it (session, status)."""
    me = await describe_token_holder(
        runtime.store, access_token=access_token, ring=runtime.keys.ring, settings=runtime.settings
    )
    return supabase_user(me, runtime.settings)


def identity_user(identity: TokenIdentity, settings: Settings) -> User:
    """GoTrue's user object from the identity a token pair was issued for, and nothing else.

    Used only when the store cannot be read again after the pair was committed: what is not in
    the identity (dates, verification, other memberships) is left unknown.
    """
    uid = str(identity.user_id)
    now = utcnow().isoformat()
    organization = (
        {
            "organization_id": identity.organization_id,
            "org_name": identity.org_name,
            "role": identity.org_role,
        }
        if identity.organization_id is not None
        else None
    )
    return User(
        id=uid,
        aud=settings.audience or "",
        role=identity.db_role,
        email=identity.email,
        email_confirmed_at=None,
        phone="",
        confirmed_at=None,
        last_sign_in_at=None,
        app_metadata={
            **PROVIDER,
            "organization": organization,
            "organizations": [organization] if organization is not None else [],
        },
        user_metadata={},
        identities=[],
        created_at=now,
        updated_at=now,
        is_anonymous=False,
    )


async def session_answer(runtime: Runtime, issued: IssuedTokens) -> Response[Session]:
    """GoTrue's token answer for a token pair just issued by ``login`` or ``refresh``.

    The pair is already committed (for a refresh, the old token is spent): nothing after this
    point may fail the answer, or the client loses the pair and its retry with the old refresh
    token trips reuse detection. So when reading the user fails (the session ended in between,
    the store is down), the user object is built from the identity the pair was issued for.
    """
    try:
        user = await caller_user(runtime, issued.access_token)
    except Exception:  # noqa: BLE001 - any failure: the committed pair must still be answered
        logger.warning("token answer: the user could not be read again; answering from the grant")
        user = identity_user(issued.identity, runtime.settings)
    body = Session(
        access_token=issued.access_token,
        token_type=TOKEN_TYPE,
        expires_in=issued.expires_in,
        expires_at=issued.expires_at,
        refresh_token=issued.refresh_token,
        user=user,
    )
    # RFC 6749 section 5.1: token answers are not cached.
    return Response(body, headers={"Cache-Control": "no-store"})


def signup_answer(email: str, settings: Settings) -> SignupUser:
    """The same answer for a new and a known address (see SignupUser)."""
    now = utcnow().isoformat()
    return SignupUser(
        id="",
        aud=settings.audience or "",
        role="",
        email=email,
        phone="",
        confirmation_sent_at=now,
        app_metadata=dict(PROVIDER),
        user_metadata={},
        created_at=now,
        updated_at=now,
        is_anonymous=False,
    )
