"""The JWKS delivered to PostgREST through its database (``bootstrap --jwks-in-database``).

PostgREST 12 reads ``pgrst.*`` settings of its authenticator role (``db-config``, on by
default), so a JWKS stored as ``pgrst.jwt_secret`` on that role needs no file next to PostgREST.
The gateway never runs ``ALTER ROLE`` itself: it calls ``auth.publish_jwks(text)``, a
SECURITY DEFINER function bootstrap installs, which checks the document holds public keys only,
stores it and sends ``NOTIFY pgrst, 'reload config'`` in one transaction.
"""

from __future__ import annotations

import json
from typing import Final

import asyncpg

from gateway.errors import GatewayError, InvalidInput
from gateway.postgrest._jwk_rules import jwks_problem
from gateway.postgrest.database import connect, postgrest_database_url
from gateway.settings import Settings

#: The function bootstrap installs; its signature as ``to_regprocedure`` spells it.
PUBLISH_FUNCTION: Final = "auth.publish_jwks(text)"
JWT_SECRET_SETTING: Final = "pgrst.jwt_secret"  # noqa: S105 - a setting's name
STATEMENT_TIMEOUT: Final = 10.0  # seconds; connecting has its own 10 s

# The authenticator's pgrst.<name> setting that PostgREST will load: one set for this database
# wins over one set for every database (PostgREST's db-config query orders them the same way).
_ROLE_SETTING: Final = """
SELECT substr(setting, length($2) + 2)
FROM pg_catalog.pg_db_role_setting AS d
JOIN pg_catalog.pg_roles AS r ON r.oid = d.setrole
CROSS JOIN LATERAL unnest(d.setconfig) AS setting
WHERE r.rolname = $1
  AND d.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database
                            WHERE datname = current_database()))
  AND setting LIKE $2 || '=%'
ORDER BY d.setdatabase = 0
LIMIT 1
"""


class JWKSRefused(GatewayError):
    """PostgREST's database refused the JWKS (a private member, not a JWK Set, no right)."""

    code = "jwks_refused"
    status = 502


async def publish_jwks(
    settings: Settings, document: bytes, *, database_url: str | None = None
) -> bool:
    """Hand ``document`` (``jwks.json``'s bytes) to PostgREST through ``auth.publish_jwks``.

    Returns:
        True once stored and PostgREST told to reload; False when the operator did not opt in
        (no PostgreSQL database is known for PostgREST, or bootstrap did not install the
        function there).

    Raises:
        PostgrestDatabaseUnavailable: the database cannot be reached.
        JWKSRefused: the database refused the document or the call.
    """
    try:
        url = postgrest_database_url(settings, database_url)
    except InvalidInput:
        return False
    try:
        text = document.decode("utf-8")
    except UnicodeDecodeError:
        raise JWKSRefused("The JWKS is not UTF-8 text.") from None
    problem = jwks_problem(document)
    if problem is not None:  # the database checks the same again: defence in depth
        raise JWKSRefused(f"The JWKS may not be published: {problem}.")
    async with connect(url) as db:
        if not await is_publisher_installed(db):
            return False
        try:
            async with db.transaction():
                await db.execute("SELECT auth.publish_jwks($1)", text, timeout=STATEMENT_TIMEOUT)
        except (TimeoutError, asyncpg.PostgresError) as exc:
            raise JWKSRefused(
                f"PostgREST's database refused the JWKS: {exc or type(exc).__name__}"
            ) from None
    return True


async def published_jwks(settings: Settings, *, database_url: str | None = None) -> bytes | None:
    """The JWKS PostgREST will load from its database, or None when none is stored there.

    Raises:
        InvalidInput: no PostgreSQL database is known for PostgREST.
        PostgrestDatabaseUnavailable: the database cannot be reached.
    """
    url = postgrest_database_url(settings, database_url)
    async with connect(url) as db:
        return await role_setting(db, settings.authenticator_role, JWT_SECRET_SETTING)


async def is_publisher_installed(db: asyncpg.Connection) -> bool:
    return bool(await db.fetchval("SELECT to_regprocedure($1) IS NOT NULL", PUBLISH_FUNCTION))


async def role_setting(db: asyncpg.Connection, role: str, name: str) -> bytes | None:
    """The value of ``name`` on ``role`` that PostgREST will load in this database."""
    value = await db.fetchval(_ROLE_SETTING, role, name, timeout=STATEMENT_TIMEOUT)
    return None if value is None else str(value).encode("utf-8")


def key_ids(document: bytes | None) -> list[str]:
    """The ``kid`` of every key in a JWKS document, in order; [] for what is not a JWKS."""
    try:
        keys = json.loads(document or b"null")["keys"]
        return [str(key.get("kid")) for key in keys if isinstance(key, dict)]
    except (ValueError, TypeError, KeyError):
        return []


def same_jwks(published: bytes | None, live: object) -> bool:
    """Whether the stored document holds the same keys as ``live`` (formatting aside)."""
    try:
        return published is not None and json.loads(published) == live
    except ValueError:
        return False
