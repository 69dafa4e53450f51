"""``gateway postgrest``, ``gateway doctor``, ``gateway explain``: the database side of tokens."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from gateway.cli._base import (
    cli,
    emit,
    in_transaction,
    json_option,
    read_line_from_stdin,
    settings,
)
from gateway.postgrest import (
    BootstrapPlan,
    apply_bootstrap,
    explain_token,
    notify_postgrest,
    postgrest_database_url,
    run_doctor,
)
from gateway.postgrest import as_json as doctor_report
from gateway.tokens import load_keyring, load_keystore, render_jwks

# The argument that means "read it from stdin", as in `gateway keys export-jwks -`.
STDIN = "-"

database_url_option = click.option(
    "--database-url",
    help="PostgREST's database (default: GATEWAY_POSTGREST_NOTIFY_URL, else a PostgreSQL store).",
)


@cli.group()
def postgrest() -> None:
    """The database PostgREST serves: roles, helpers, reloads."""


@postgrest.command()
@click.option("--anon-role", help="Role for requests without a token (default GATEWAY_ANON_ROLE).")
@click.option(
    "--authenticator-role",
    help="Role PostgREST logs in as (default GATEWAY_AUTHENTICATOR_ROLE).",
)
@click.option(
    "--authenticator-password-stdin",
    is_flag=True,
    help="Set the authenticator's password from the first line of stdin.",
)
@click.option("--example", is_flag=True, help="Also create the org-scoped example table.")
@click.option(
    "--jwks-in-database",
    is_flag=True,
    help="Deliver the JWKS as the authenticator's pgrst.jwt_secret (auth.publish_jwks) and "
    "publish the current one.",
)
@click.option(
    "--jwks-publisher-role",
    help="The role allowed to call auth.publish_jwks (default: the user of the gateway's URL "
    "for PostgREST's database, else the role running bootstrap).",
)
@click.option(
    "--check-sessions",
    is_flag=True,
    help="Install auth.check_session() as PostgREST's db-pre-request: refuse tokens of ended "
    "sessions and suspended users (needs the gateway's tables in this database).",
)
@click.option("--print", "print_only", is_flag=True, help="Print the SQL instead of running it.")
@database_url_option
def bootstrap(
    anon_role: str | None,
    authenticator_role: str | None,
    authenticator_password_stdin: bool,
    example: bool,
    jwks_in_database: bool,
    jwks_publisher_role: str | None,
    check_sessions: bool,
    print_only: bool,
    database_url: str | None,
) -> None:
    """Create the roles, grants and auth.* helpers PostgREST needs (idempotent, additive)."""
    config = settings()
    plan = BootstrapPlan.from_settings(
        config,
        anon_role=anon_role,
        authenticator_role=authenticator_role,
        example=example,
        jwks_in_database=jwks_in_database,
        jwks_publisher=jwks_publisher_role,
        check_sessions=check_sessions,
    )
    if print_only:
        click.echo(plan.sql(), nl=False)
        return
    password = read_line_from_stdin("password") if authenticator_password_stdin else None
    url = postgrest_database_url(config, database_url)
    jwks = render_jwks(load_keystore(config).jwks()) if jwks_in_database else None
    asyncio.run(apply_bootstrap(url, plan, authenticator_password=password, jwks=jwks))
    click.echo(
        f"bootstrapped: roles {', '.join(plan.switchable_roles)} granted to "
        f"{plan.authenticator_role}; auth.* helpers"
        + ("; example table public.projects" if example else "")
        + ("; JWKS published as pgrst.jwt_secret" if jwks_in_database else "")
        + ("; auth.check_session() as db-pre-request" if check_sessions else "")
    )


@postgrest.command()
@click.argument("what", required=False, type=click.Choice(["schema", "config"]))
@database_url_option
def reload(what: str | None, database_url: str | None) -> None:
    """NOTIFY pgrst: reload the schema cache, the config (and JWKS), or both."""
    url = postgrest_database_url(settings(), database_url)
    asyncio.run(notify_postgrest(url, f"reload {what}" if what else ""))
    click.echo(f"sent NOTIFY pgrst{f', reload {what}' if what else ''}")


@cli.command()
@database_url_option
@click.option("--upstream-url", help="PostgREST's URL (default GATEWAY_UPSTREAM_URL).")
@json_option
def doctor(database_url: str | None, upstream_url: str | None, as_json: bool) -> None:
    """Check that the store, keys, database roles and PostgREST agree; explain each mismatch."""
    checks = asyncio.run(
        run_doctor(settings(), database_url=database_url, upstream_url=upstream_url)
    )
    if as_json:
        click.echo(json.dumps(doctor_report(checks), sort_keys=True))
    else:
        for check in checks:
            click.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
            if check.fix and not check.ok:
                click.echo(f"     fix: {check.fix}")
    if not all(check.ok for check in checks):
        sys.exit(1)


@cli.command()
@click.argument("token")
@click.option("--method", default="GET", show_default=True, help="The request's method.")
@click.option("--path", default="/", show_default=True, help="The request's path at PostgREST.")
@json_option
def explain(token: str, method: str, path: str, as_json: bool) -> None:
    """Check TOKEN as the gateway does and show what PostgREST will do with it.

    TOKEN "-" reads it from the first line of stdin, which keeps it out of ps and the shell's
    history. A token the gateway would refuse (expired, revoked session, suspended user) is
    reported as refused, with exit code 1.
    """
    if token == STDIN:
        token = read_line_from_stdin("token").strip()
    config = settings()
    ring = load_keyring(config)
    explanation = in_transaction(
        lambda db: explain_token(db, config, ring, token, method=method, path=path)
    )
    emit(explanation.as_json(), as_json=as_json, text=explanation.as_text())
