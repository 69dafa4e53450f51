"""The dev stack's database: created when missing, bootstrapped, given a few example rows."""

from __future__ import annotations

import asyncpg

from gateway.devstack._postgres import MAINTENANCE_DATABASE, database_name, with_database
from gateway.devstack.errors import DevStackError
from gateway.devstack.roles import DEV_ROLE_MARK, foreign_roles
from gateway.postgrest import BootstrapPlan, apply_bootstrap

EXAMPLE_ROWS = ("Apollo", "Gemini", "Mercury")


async def ensure_database(url: str) -> bool:
    """Create the database ``url`` names unless it exists; True when it was created."""
    name = database_name(url)
    admin = await _connect(with_database(url, MAINTENANCE_DATABASE))
    try:
        if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        # CREATE DATABASE takes no parameters; the name is quoted as an identifier.
        quoted = '"' + name.replace('"', '""') + '"'
        await admin.execute(f"CREATE DATABASE {quoted}")
        return True
    finally:
        await admin.close()


async def bootstrap_database(url: str, plan: BootstrapPlan, authenticator_password: str) -> None:
    """Roles, ``auth.*`` helpers and the example table, refusing roles that are not ours.

    The check and the creation are not atomic across the cluster; a role created by someone
    else in between is still never dropped or altered beyond what bootstrap's additive script
    does, and the next start refuses it.
    """
    wanted = (*plan.switchable_roles, plan.authenticator_role)
    connection = await _connect(url)
    try:
        rows = await connection.fetch(
            "SELECT rolname, shobj_description(oid, 'pg_authid') AS comment "
            "FROM pg_roles WHERE rolname = ANY($1::text[])",
            list(wanted),
        )
    finally:
        await connection.close()
    foreign = foreign_roles(wanted, {row["rolname"]: row["comment"] for row in rows})
    if foreign:
        raise DevStackError(
            f"The role{'s' if len(foreign) > 1 else ''} {', '.join(foreign)} already exist"
            f"{'' if len(foreign) > 1 else 's'} in this PostgreSQL cluster and gateway dev did "
            "not create them, so it leaves them alone. Give the dev stack names of its own (for "
            "example GATEWAY_ANON_ROLE=dev_anon, GATEWAY_AUTHENTICATED_ROLE=dev_authenticated, "
            "GATEWAY_ALLOWED_ROLES=dev_authenticated, GATEWAY_AUTHENTICATOR_ROLE="
            "dev_authenticator in this folder's .env, so every command here agrees), or set "
            "GATEWAY_DEV_DATABASE_URL to another server."
        )
    await apply_bootstrap(url, plan, authenticator_password=authenticator_password)
    connection = await _connect(url)
    try:
        for role in wanted:
            # Bootstrap checked each name against a plain identifier pattern.
            await connection.execute(f"COMMENT ON ROLE \"{role}\" IS '{DEV_ROLE_MARK}'")
    finally:
        await connection.close()


async def seed_example_rows(url: str, organization_id: int) -> int:
    """A few ``projects`` of the demo organization, once: how many rows it has afterwards."""
    connection = await _connect(url)
    try:
        async with connection.transaction():
            count = await connection.fetchval(
                "SELECT count(*) FROM public.projects WHERE organization_id = $1", organization_id
            )
            if count == 0:
                await connection.executemany(
                    "INSERT INTO public.projects (organization_id, name) VALUES ($1, $2)",
                    [(organization_id, name) for name in EXAMPLE_ROWS],
                )
                count = len(EXAMPLE_ROWS)
        return int(count)
    finally:
        await connection.close()


async def _connect(url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(url, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DevStackError(
            f"Cannot connect to the dev database: {exc or type(exc).__name__}"
        ) from None
