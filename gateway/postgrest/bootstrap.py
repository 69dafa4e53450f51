"""``gateway postgrest bootstrap``: the roles, grants and ``auth`` helpers PostgREST needs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from urllib.parse import urlsplit

import asyncpg

from gateway.errors import GatewayError, InvalidInput
from gateway.postgrest._jwk_rules import jwks_problem, rules_sql_literal
from gateway.postgrest.database import connect, postgrest_database_url
from gateway.settings import Settings
from gateway.store import asyncpg_dsn

HELPERS = (
    "auth.claims()",
    "auth.user_id()",
    "auth.organization_id()",
    "auth.org_role()",
    "auth.email()",
)
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
#: What ``--check-sessions`` sets as the authenticator's ``pgrst.db_pre_request``.
PRE_REQUEST = "auth.check_session"


class BootstrapRefused(GatewayError):
    code = "bootstrap_refused"
    status = 502


def _sql_file(name: str) -> str:
    return files("gateway.postgrest").joinpath("sql", name).read_text(encoding="utf-8")


def _role(name: str, what: str) -> str:
    if not _ROLE_NAME.match(name):
        raise InvalidInput(f"{what} {name!r} is not a lower-case SQL identifier.")
    return f'"{name}"'


@dataclass(frozen=True, slots=True)
class BootstrapPlan:
    anon_role: str
    authenticator_role: str
    signed_in_roles: tuple[str, ...]
    example: bool
    gateway_schema: str = "gateway"
    jwks_in_database: bool = False
    #: Who may call ``auth.publish_jwks``: the role the gateway connects to PostgREST's database
    #: as; None is the role that runs the bootstrap (which owns the function anyway).
    jwks_publisher: str | None = None
    check_sessions: bool = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        anon_role: str | None = None,
        authenticator_role: str | None = None,
        example: bool = False,
        jwks_in_database: bool = False,
        jwks_publisher: str | None = None,
        check_sessions: bool = False,
    ) -> BootstrapPlan:
        plan = cls(
            anon_role=anon_role or settings.anon_role,
            authenticator_role=authenticator_role or settings.authenticator_role,
            signed_in_roles=tuple(settings.allowed_roles),
            example=example,
            gateway_schema=settings.database_schema,
            jwks_in_database=jwks_in_database,
            jwks_publisher=(jwks_publisher or _gateway_role(settings))
            if jwks_in_database
            else None,
            check_sessions=check_sessions,
        )
        for role in (plan.anon_role, plan.authenticator_role, *plan.signed_in_roles):
            _role(role, "The role")
        _role(plan.gateway_schema, "The gateway's schema")
        if plan.jwks_publisher is not None:
            _role(plan.jwks_publisher, "The JWKS publisher role")
            _check_publisher_name(plan)
        if plan.check_sessions:
            _role(plan.check_schema, "The session check's schema")
        if plan.authenticator_role in (plan.anon_role, *plan.signed_in_roles):
            raise InvalidInput("The authenticator role must differ from the roles it switches to.")
        return plan

    @property
    def switchable_roles(self) -> tuple[str, ...]:
        """The roles PostgREST may switch to: anonymous first, then every signed-in role."""
        return (self.anon_role, *dict.fromkeys(self.signed_in_roles))

    def sql(self) -> str:
        """The whole script: idempotent and additive, it never drops or weakens what exists."""
        roles = self.switchable_roles
        quoted = ", ".join(_role(r, "role") for r in roles)
        authenticator = _role(self.authenticator_role, "role")
        creates = "\n".join(
            f"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN\n"
            f"    CREATE ROLE {_role(role, 'role')} NOLOGIN;\n  END IF;"
            for role in roles
        )
        parts = [
            "-- Roles PostgREST switches to (NOLOGIN: nobody signs in as them directly).",
            f"DO $$ BEGIN\n{creates}\nEND $$;",
            "-- The role PostgREST logs in as: it can do nothing itself (NOINHERIT) except",
            "-- switch to the roles granted to it.",
            "DO $$ BEGIN\n"
            f"  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{self.authenticator_role}')"
            f" THEN\n    CREATE ROLE {authenticator} LOGIN NOINHERIT;\n  END IF;\nEND $$;",
            *(f"GRANT {_role(role, 'role')} TO {authenticator};" for role in roles),
            _sql_file("helpers.sql").strip(),
            f"GRANT USAGE ON SCHEMA auth TO {quoted};",
            f"GRANT EXECUTE ON FUNCTION {', '.join(HELPERS)} TO {quoted};",
        ]
        if self.example:
            signed_in = ", ".join(_role(r, "role") for r in dict.fromkeys(self.signed_in_roles))
            parts.append(_sql_file("example.sql").strip().replace("{signed_in_roles}", signed_in))
        if self.jwks_in_database:
            parts += self._jwks_publisher_sql()
        if self.check_sessions:
            parts += self._check_session_sql(quoted)
        return "\n\n".join(parts) + "\n"

    def _jwks_publisher_sql(self) -> list[str]:
        # Names are checked against _ROLE_NAME above, so quoting them here cannot be escaped.
        publisher = "CURRENT_USER" if self.jwks_publisher is None else f"'{self.jwks_publisher}'"
        api_roles = ", ".join(f"'{r}'" for r in (*self.switchable_roles, self.authenticator_role))
        function = _sql_file("jwks_publisher.sql").strip()
        function = function.replace("{authenticator_literal}", f"'{self.authenticator_role}'")
        return [
            function.replace("{jwk_rules}", rules_sql_literal()),
            "-- EXECUTE for one role: the publisher. Never PUBLIC, an API role or a role that",
            "-- can act as one; any earlier grant to another role is revoked.",
            _sql_file("jwks_grant.sql")
            .strip()
            .replace("{publisher}", publisher)
            .replace("{api_roles}", api_roles),
        ]

    @property
    def check_schema(self) -> str:
        """The schema holding only ``session_refusal``: the one the API roles may use."""
        return f"{self.gateway_schema}_check"

    def _check_session_sql(self, api_roles: str) -> list[str]:
        schema = _role(self.gateway_schema, "schema")
        check = _role(self.check_schema, "The session check's schema")
        script = (
            _sql_file("check_session.sql")
            .strip()
            .replace("{gateway_schema}", schema)
            .replace("{check_schema}", check)
            .replace("{anon_literal}", f"'{self.anon_role}'")
        )
        # The gateway's own schema: the API roles lose the USAGE older versions granted (its
        # functions default to PUBLIC EXECUTE); never for "public", which PostgREST serves.
        revoke = (
            [f"REVOKE USAGE ON SCHEMA {schema} FROM {api_roles};"]
            if self.gateway_schema != "public"
            else []
        )
        return [
            _sql_file("pre_request_guard.sql")
            .strip()
            .replace("{authenticator_literal}", f"'{self.authenticator_role}'")
            .replace("{pre_request_literal}", f"'{PRE_REQUEST}'"),
            script,
            "REVOKE ALL ON FUNCTION auth.check_session() FROM PUBLIC;",
            f"GRANT EXECUTE ON FUNCTION auth.check_session() TO {api_roles};",
            f"GRANT USAGE ON SCHEMA {check} TO {api_roles};",
            f"GRANT EXECUTE ON FUNCTION {check}.session_refusal(text, text) TO {api_roles};",
            *revoke,
            "-- PostgREST runs it before every request; its own file needs no db-pre-request.",
            "DO $$ BEGIN EXECUTE format("
            "'ALTER ROLE %I IN DATABASE %I SET pgrst.db_pre_request = %L', "
            f"'{self.authenticator_role}', current_database(), '{PRE_REQUEST}'); END $$;",
        ]


def _check_publisher_name(plan: BootstrapPlan) -> None:
    """The names a publisher may never have; the database checks memberships (jwks_grant.sql)."""
    name = plan.jwks_publisher or ""
    if (
        name == "public"
        or name.startswith("pg_")
        or name
        in (
            plan.authenticator_role,
            *plan.switchable_roles,
        )
    ):
        raise InvalidInput(
            f"The JWKS publisher role {name!r} may not be PUBLIC, a pg_* role, or the anon, "
            "signed-in or authenticator role: pass --jwks-publisher-role with the role the "
            "gateway connects as."
        )


def _gateway_role(settings: Settings) -> str | None:
    """The user the gateway connects to PostgREST's database as, when its URL names one."""
    try:
        user = urlsplit(asyncpg_dsn(postgrest_database_url(settings))).username
    except (InvalidInput, ValueError):
        return None
    return user if user and _ROLE_NAME.match(user) else None


async def apply_bootstrap(
    url: str,
    plan: BootstrapPlan,
    *,
    authenticator_password: str | None = None,
    jwks: bytes | None = None,
) -> None:
    """Run the script in one transaction; optionally (re)set the authenticator's password.

    The password never enters the SQL text: it travels as a bound parameter into a
    transaction-local setting that ``format(... %L)`` quotes on the server. With
    ``plan.jwks_in_database``, ``jwks`` (the keystore's ``jwks.json``) is published in the same
    transaction, so PostgREST verifies the gateway's tokens as soon as it commits.

    Raises:
        InvalidInput: ``--check-sessions`` without the gateway's tables in this database, or
            ``--jwks-in-database`` without a JWKS.
    """
    if plan.jwks_in_database and jwks is None:
        raise InvalidInput("--jwks-in-database needs the keystore's JWKS to publish.")
    problem = None if jwks is None else jwks_problem(jwks)
    if problem is not None:
        raise InvalidInput(f"The keystore's JWKS cannot be published: {problem}.")
    async with connect(url) as connection:
        try:
            await _apply(connection, plan, authenticator_password, jwks)
        except asyncpg.PostgresError as exc:
            raise BootstrapRefused(f"PostgREST's database refused the bootstrap: {exc}") from None


async def _apply(
    connection: asyncpg.Connection,
    plan: BootstrapPlan,
    authenticator_password: str | None,
    jwks: bytes | None,
) -> None:
    async with connection.transaction():
        if plan.check_sessions:
            await _require_gateway_tables(connection, plan.gateway_schema)
        await connection.execute(plan.sql())
        if plan.jwks_in_database and jwks is not None:
            await connection.execute("SELECT auth.publish_jwks($1)", jwks.decode("utf-8"))
        if authenticator_password is not None:
            await connection.execute(
                "SELECT set_config('gateway.authenticator_password', $1, true)",
                authenticator_password,
            )
            await connection.execute(
                "DO $$ BEGIN EXECUTE format('ALTER ROLE %I PASSWORD %L', "
                f"'{plan.authenticator_role}', "
                "current_setting('gateway.authenticator_password')); END $$;"
            )
            await connection.execute(
                "SELECT set_config('gateway.authenticator_password', '', true)"
            )


async def _require_gateway_tables(connection: asyncpg.Connection, schema: str) -> None:
    for table in ("sessions", "users"):
        if await connection.fetchval("SELECT to_regclass($1)", f'"{schema}".{table}') is None:
            raise InvalidInput(
                f"--check-sessions needs the gateway's tables in PostgREST's database, and "
                f'"{schema}".{table} is not there: run PostgREST on the gateway\'s database '
                "(after `gateway db upgrade`), or leave out --check-sessions."
            )
