"""``gateway users``: accounts."""

from __future__ import annotations

import click
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.accounts import (
    PasswordHashing,
    create_user,
    delete_user,
    get_user_by_email,
    list_users,
    mark_email_verified,
    set_password,
    set_user_status,
)
from gateway.cli._base import (
    cli,
    emit,
    fail,
    in_transaction,
    json_option,
    read_line_from_stdin,
    settings,
)
from gateway.store import ID_MAX, User, utcnow


@cli.group()
def users() -> None:
    """User accounts."""


def user_document(user: User) -> dict[str, object]:
    return {
        "user_id": user.id,
        "email": user.email,
        "status": user.status,
        "db_role": user.db_role,
        "created_at": user.created_at.isoformat(),
        "email_verified_at": (
            user.email_verified_at.isoformat() if user.email_verified_at is not None else None
        ),
    }


@users.command("create")
@click.argument("email")
@click.option(
    "--password-stdin",
    is_flag=True,
    required=True,
    help="Read the password from stdin.",
)
@click.option(
    "--org",
    "organization_id",
    type=click.IntRange(1, ID_MAX),
    help="Add the user to this organization.",
)
@click.option(
    "--org-role",
    help="Role in --org: org_admin or org_client (default org_client).",
)
@click.option("--db-role", help="Top-level token role (default GATEWAY_AUTHENTICATED_ROLE).")
@json_option
def create(
    email: str,
    password_stdin: bool,
    organization_id: int | None,
    org_role: str | None,
    db_role: str | None,
    as_json: bool,
) -> None:
    """Create the user EMAIL; the password is read from standard input."""
    if org_role is not None and organization_id is None:
        fail("--org-role needs --org")
    password = read_line_from_stdin("password")
    config = settings()

    async def work(db: AsyncSession) -> dict[str, object]:
        passwords = PasswordHashing(workers=1)
        try:
            user = await create_user(
                db=db,
                passwords=passwords,
                settings=config,
                email=email,
                password=password,
                db_role=db_role,
                organization_id=organization_id,
                org_role=org_role,
                # The operator vouches for the address: GATEWAY_REQUIRE_VERIFIED_EMAIL
                # must not lock out the users they create.
                email_verified=True,
            )
        finally:
            passwords.close()
        document = user_document(user)
        if organization_id is not None:
            document["organization_id"] = organization_id
            document["org_role"] = org_role or "org_client"
        return document

    document = in_transaction(work)
    emit(
        document,
        as_json=as_json,
        text=f"created user {document['user_id']} ({document['email']})",
    )


@users.command("set-password")
@click.argument("email")
@click.option(
    "--password-stdin",
    is_flag=True,
    required=True,
    help="Read the new password from stdin.",
)
@json_option
def set_password_command(email: str, password_stdin: bool, as_json: bool) -> None:
    """Give EMAIL a new password (read from standard input); every session of theirs ends."""
    password = read_line_from_stdin("password")
    config = settings()

    async def work(db: AsyncSession) -> dict[str, object]:
        passwords = PasswordHashing(workers=1)
        try:
            done = await set_password(
                db=db, passwords=passwords, settings=config, email=email, password=password
            )
        finally:
            passwords.close()
        return {**user_document(done.user), "sessions_ended": len(done.sessions_ended)}

    document = in_transaction(work)
    emit(
        document,
        as_json=as_json,
        text=(
            f"new password set for {document['email']}; "
            f"{document['sessions_ended']} session(s) ended"
        ),
    )


def _status_command(name: str, status: str, summary: str) -> None:
    @users.command(name, help=summary)
    @click.argument("email")
    @json_option
    def command(email: str, as_json: bool) -> None:
        async def work(db: AsyncSession) -> dict[str, object]:
            return user_document(await set_user_status(db=db, email=email, status=status))

        document = in_transaction(work)
        emit(
            document,
            as_json=as_json,
            text=f"{document['email']} is {document['status']}",
        )


_status_command("suspend", "suspended", "Suspend EMAIL: they can no longer sign in.")
_status_command("activate", "active", "Reactivate the suspended user EMAIL.")


@users.command("delete")
@click.argument("email")
@click.option("--yes", is_flag=True, required=True, help="Confirm: this cannot be undone.")
@json_option
def delete(email: str, yes: bool, as_json: bool) -> None:
    """Delete EMAIL: every session ends at once, the email, password and addresses are removed;
    audit rows keep the numeric id only. Refused for the last org_admin of an organization."""

    async def work(db: AsyncSession) -> dict[str, object]:
        user = await get_user_by_email(db=db, email=email)
        await delete_user(db, user_id=user.id, now=utcnow())
        return {"user_id": user.id, "deleted": True}

    document = in_transaction(work)
    emit(document, as_json=as_json, text=f"deleted user {document['user_id']}")


@users.command("verify")
@click.argument("email")
@json_option
def verify(email: str, as_json: bool) -> None:
    """Mark EMAIL's address verified (as its verification link would); idempotent."""

    async def work(db: AsyncSession) -> dict[str, object]:
        return user_document(await mark_email_verified(db=db, email=email))

    document = in_transaction(work)
    emit(document, as_json=as_json, text=f"{document['email']} is verified")


@users.command("list")
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    help="At most this many users.",
)
@click.option(
    "--after",
    "after_id",
    type=click.IntRange(1, ID_MAX),
    help="Start after this user id (the last one of the previous page).",
)
@json_option
def list_command(limit: int, after_id: int | None, as_json: bool) -> None:
    """The users in id order, a page at a time."""

    async def work(db: AsyncSession) -> list[dict[str, object]]:
        return [
            user_document(user) for user in await list_users(db=db, limit=limit, after_id=after_id)
        ]

    documents = in_transaction(work)
    # A full page may have a successor; a short one is the last.
    after = documents[-1]["user_id"] if len(documents) == limit else None
    lines = [
        f"{user['user_id']}  {user['email']}  {user['status']}"
        + ("" if user["email_verified_at"] else "  (unverified)")
        for user in documents
    ]
    if after is not None:
        lines.append(f"more: --after {after}")
    emit(
        {"users": documents, "next_after": after},
        as_json=as_json,
        text="\n".join(lines) or "no users",
    )
