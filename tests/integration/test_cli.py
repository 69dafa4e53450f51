"""The CLI against a real store (SQLite and PostgreSQL): commands work, bad input is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner, Result

from gateway.cli import cli
from gateway.settings import Settings
from tests.conftest import dump_store
from tests.support.cli import run_cli

PASSWORD = "correct horse battery"


def gateway(env: dict[str, str], *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, env=env)


def gateway_json(env: dict[str, str], *args: str, stdin: str | None = None) -> Any:
    result = gateway(env, *args, "--json", stdin=stdin)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def create_org(env: dict[str, str], name: str = "Acme") -> int:
    organization_id = gateway_json(env, "orgs", "create", name)["organization_id"]
    assert isinstance(organization_id, int)
    return organization_id


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])

    assert result.exit_code == 0
    for command in ("serve", "dev", "db", "orgs", "users", "members"):
        assert command in result.stdout
    users_help = CliRunner().invoke(cli, ["users", "--help"]).stdout
    assert all(name in users_help for name in ("create", "suspend", "activate", "set-password"))


def test_python_dash_m_gateway_runs_the_same_cli() -> None:
    result = run_cli({}, None, "--help")

    assert result.returncode == 0
    assert "orgs" in result.stdout


def test_db_upgrade_says_it_migrated_on_the_run_that_did_and_up_to_date_after(
    store_env: dict[str, str],
) -> None:
    first = gateway(store_env, "db", "upgrade")
    second = gateway(store_env, "db", "upgrade")

    assert first.exit_code == 0, first.stderr
    assert "migrated to the newest version" in first.stdout
    assert "up to date" not in first.stdout
    assert second.exit_code == 0, second.stderr
    assert "is already up to date" in second.stdout


def test_db_upgrade_then_the_documented_walkthrough(store_env: dict[str, str]) -> None:
    assert gateway(store_env, "db", "upgrade").exit_code == 0

    org = gateway_json(store_env, "orgs", "create", "Acme")
    user = gateway_json(
        store_env,
        *("users", "create", "ada@example.com", "--password-stdin"),
        *("--org", str(org["organization_id"]), "--org-role", "org_admin"),
        stdin=f"{PASSWORD}\n",
    )
    bob = gateway_json(
        store_env, "users", "create", "Bob@Example.com", "--password-stdin", stdin=PASSWORD
    )
    member = gateway_json(
        store_env,
        *("members", "add", "--org", str(org["organization_id"])),
        *("--email", "bob@example.com", "--role", "org_client"),
    )
    suspended = gateway_json(store_env, "users", "suspend", "ADA@example.com")
    activated = gateway_json(store_env, "users", "activate", "ada@example.com")

    assert org["org_name"] == "Acme"
    assert user["email"] == "ada@example.com"
    assert isinstance(user["user_id"], int)
    assert 0 < user["user_id"] < 2**53
    assert user["organization_id"] == org["organization_id"]
    assert user["org_role"] == "org_admin"
    assert user["db_role"] == "authenticated"
    assert bob["email"] == "Bob@example.com"  # domain lower-cased, local part kept for display
    assert member == {
        "user_id": bob["user_id"],
        "email": "Bob@example.com",
        "organization_id": org["organization_id"],
        "role": "org_client",
    }
    assert suspended["status"] == "suspended"
    assert activated["status"] == "active"


def test_commands_without_json_print_a_sentence(
    migrated_store: Settings, store_env: dict[str, str]
) -> None:
    result = gateway(store_env, "orgs", "create", "Acme")

    assert result.exit_code == 0
    assert result.stdout.startswith("created organization ")
    assert "Acme" in result.stdout


def test_the_password_is_never_echoed(migrated_store: Settings, store_env: dict[str, str]) -> None:
    result = gateway(
        store_env,
        "users",
        "create",
        "ada@example.com",
        "--password-stdin",
        "--json",
        stdin=PASSWORD,
    )

    assert result.exit_code == 0
    assert PASSWORD not in result.stdout + result.stderr
    assert "argon2" not in result.stdout


def test_the_password_hash_is_argon2id_in_the_store(
    migrated_store: Settings, store_env: dict[str, str]
) -> None:
    gateway_json(
        store_env, "users", "create", "ada@example.com", "--password-stdin", stdin=PASSWORD
    )
    users = dump_store(migrated_store)["users"]
    assert len(users) == 1
    assert any(str(value).startswith("$argon2id$") for value in users[0])
    assert all(PASSWORD not in str(value) for value in users[0])


REFUSALS: list[tuple[str, list[str], str | None, str]] = [
    ("invalid email", ["users", "create", "ada@", "--password-stdin"], PASSWORD, "valid email"),
    ("short password", ["users", "create", "c@example.com", "--password-stdin"], "short", "8 char"),
    ("empty password", ["users", "create", "c@example.com", "--password-stdin"], "\n", "password"),
    (
        "duplicate email in another letter case",
        ["users", "create", "ADA@EXAMPLE.COM", "--password-stdin"],
        PASSWORD,
        "already exists",
    ),
    (
        "unknown organization",
        ["users", "create", "c@example.com", "--password-stdin", "--org", "123456789"],
        PASSWORD,
        "no organization with id 123456789",
    ),
    (
        "unknown org role",
        [
            "users",
            "create",
            "c@example.com",
            "--password-stdin",
            "--org",
            "{org}",
            "--org-role",
            "owner",
        ],
        PASSWORD,
        "'owner' is not an organization role",
    ),
    (
        "org role without an organization",
        ["users", "create", "c@example.com", "--password-stdin", "--org-role", "org_admin"],
        PASSWORD,
        "--org-role needs --org",
    ),
    (
        "database role outside the allow-list",
        ["users", "create", "c@example.com", "--password-stdin", "--db-role", "postgres"],
        PASSWORD,
        "not in GATEWAY_ALLOWED_ROLES",
    ),
    ("duplicate organization name", ["orgs", "create", "Acme"], None, "already exists"),
    ("blank organization name", ["orgs", "create", "  "], None, "must not be empty"),
    (
        "member of an unknown organization",
        ["members", "add", "--org", "42", "--email", "ada@example.com", "--role", "org_client"],
        None,
        "no organization with id 42",
    ),
    (
        "member who is already one",
        ["members", "add", "--org", "{org}", "--email", "ada@example.com", "--role", "org_client"],
        None,
        "already a member",
    ),
    (
        "member with an unknown role",
        ["members", "add", "--org", "{org}", "--email", "ada@example.com", "--role", "admin"],
        None,
        "not an organization role",
    ),
    (
        "member who is not a user",
        ["members", "add", "--org", "{org}", "--email", "zed@example.com", "--role", "org_client"],
        None,
        "no user with that email",
    ),
    ("suspend an unknown user", ["users", "suspend", "zed@example.com"], None, "no user"),
    ("activate an invalid email", ["users", "activate", "zed"], None, "valid email"),
]


@pytest.mark.parametrize(
    ("args", "stdin", "complaint"),
    [pytest.param(args, stdin, complaint, id=name) for name, args, stdin, complaint in REFUSALS],
)
def test_bad_input_is_refused_in_one_line_and_the_store_is_unchanged(
    migrated_store: Settings,
    store_env: dict[str, str],
    args: list[str],
    stdin: str | None,
    complaint: str,
) -> None:
    org = create_org(store_env)
    gateway_json(
        store_env,
        *("users", "create", "ada@example.com", "--password-stdin"),
        *("--org", str(org), "--org-role", "org_admin"),
        stdin=PASSWORD,
    )
    before = dump_store(migrated_store)

    result = gateway(store_env, *[a.replace("{org}", str(org)) for a in args], stdin=stdin)

    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("gateway: error: ")
    assert complaint in lines[0]
    assert "Traceback" not in result.stderr
    assert dump_store(migrated_store) == before


# Ids outside [1, 2**53 - 1] cannot name an organization (see gateway.store.ids); 2**63 and
# beyond do not even fit a 64-bit column, and once crashed the command with an OverflowError.
OUT_OF_RANGE_ORGS = ["99999999999999999999", str(2**63), str(2**53), "0", "-1"]
COMMANDS_WITH_AN_ORG: list[tuple[str, list[str], str | None]] = [
    (
        "members add",
        ["members", "add", "--org", "{org}", "--email", "ada@example.com", "--role", "org_client"],
        None,
    ),
    (
        "users create",
        ["users", "create", "c@example.com", "--password-stdin", "--org", "{org}"],
        PASSWORD,
    ),
]


@pytest.mark.parametrize("org", OUT_OF_RANGE_ORGS)
@pytest.mark.parametrize(
    ("args", "stdin"),
    [pytest.param(args, stdin, id=name) for name, args, stdin in COMMANDS_WITH_AN_ORG],
)
def test_an_out_of_range_organization_id_is_a_usage_error_and_the_store_is_unchanged(
    migrated_store: Settings,
    store_env: dict[str, str],
    args: list[str],
    stdin: str | None,
    org: str,
) -> None:
    create_org(store_env)
    gateway_json(
        store_env, "users", "create", "ada@example.com", "--password-stdin", stdin=PASSWORD
    )
    before = dump_store(migrated_store)

    result = gateway(store_env, *[a.replace("{org}", org) for a in args], stdin=stdin)

    # Refused while parsing the command line, as a missing option is: click's usage error, exit
    # code 2, and no exception escaping the command (which would print a traceback).
    assert result.exit_code == 2, result.stderr
    assert isinstance(result.exception, SystemExit), result.exc_info
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: Invalid value for '--org'")
    assert dump_store(migrated_store) == before


def test_an_invalid_setting_stops_the_command_with_one_line() -> None:
    result = gateway({"GATEWAY_PORT": "eighty"}, "orgs", "create", "Acme")

    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "gateway: error: invalid setting GATEWAY_PORT: Input should be a valid integer, "
        "unable to parse string as an integer"
    )


@pytest.mark.postgres
def test_an_unmigrated_postgresql_store_is_refused_with_the_command_to_run(
    postgres_url: str,
) -> None:
    env = {
        "GATEWAY_DATABASE_URL": postgres_url.replace("postgresql://", "postgresql+asyncpg://"),
        "GATEWAY_DATABASE_SCHEMA": "never_migrated",
    }

    result = gateway(env, "orgs", "create", "Acme")

    assert result.exit_code == 1
    assert "not migrated" in result.stderr
    assert "gateway db upgrade" in result.stderr


def test_an_unreachable_store_is_reported_without_its_password() -> None:
    env = {"GATEWAY_DATABASE_URL": "postgresql+asyncpg://app:s3cret@127.0.0.1:1/app"}

    result = gateway(env, "orgs", "create", "Acme")

    assert result.exit_code == 1
    assert "Cannot reach the store at postgresql+asyncpg://app:***@127.0.0.1:1/app" in (
        result.stderr
    )
    assert "s3cret" not in result.stderr
    assert "Traceback" not in result.stderr


def test_the_embedded_store_is_created_on_first_use(tmp_path: Any) -> None:
    env = {"GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/new/folder/gateway.db"}

    assert gateway(env, "orgs", "create", "Acme").exit_code == 0
    assert (tmp_path / "new" / "folder" / "gateway.db").exists()
