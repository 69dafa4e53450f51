"""``gateway postgrest bootstrap``: the roles, grants and ``auth`` helpers PostgREST needs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files

from gateway.errors import InvalidInput
from gateway.postgrest.database import connect
from gateway.settings import Settings

HELPERS = (
    "auth.claims()",
    "auth.user_id()",
    "auth.organization_id()",
    "auth.org_role()",
    "auth.email()",
)
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


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

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        anon_role: str | None = None,
        authenticator_role: str | None = None,
        example: bool = False,
    ) -> BootstrapPlan:
        plan = cls(
            anon_role=anon_role or settings.anon_role,
            authenticator_role=authenticator_role or settings.authenticator_role,
            signed_in_roles=tuple(settings.allowed_roles),
            example=example,
        )
        for role in (plan.anon_role, plan.authenticator_role, *plan.signed_in_roles):
            _role(role, "The role")
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
        return "\n\n".join(parts) + "\n"


async def apply_bootstrap(
    url: str, plan: BootstrapPlan, *, authenticator_password: str | None = None
) -> None:
    """Run the script in one transaction; optionally (re)set the authenticator's password.

    The password never enters the SQL text: it travels as a bound parameter into a
    transaction-local setting that ``format(... %L)`` quotes on the server.
    """
    async with connect(url) as connection, connection.transaction():
        await connection.execute(plan.sql())
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
