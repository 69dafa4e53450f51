"""compose.yaml, the Dockerfile and .dockerignore agree with the code, the tests and each other.

No Docker engine runs where the tests run, so these read the files instead: every value a
container depends on is checked against the place that defines it (the Settings fields, the
PostgREST version the e2e tests run, the keystore's file names), and the wiring between the
services (volumes, roles, passwords, databases) is checked end to end.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gateway.settings import ENV_PREFIX, Settings, load_settings
from gateway.tokens.keystore import JWKS_NAME
from tests.support.postgrest import POSTGREST_VERSION

ROOT = Path(__file__).resolve().parents[2]
KEYS_VOLUME = "keys"
SOCKETS_VOLUME = "sockets"
#: The official PostgREST image runs as this uid; the gateway must not share it, or PostgREST
#: could read the 0600 private keys on the volume they both mount.
POSTGREST_IMAGE_UID = 1000
SETTING_VARIABLES = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
_COMPOSE_DEFAULT = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}")


# --- reading the files ----------------------------------------------------------------------


def compose_text() -> str:
    return (ROOT / "compose.yaml").read_text()


def compose() -> dict[str, Any]:
    document = yaml.safe_load(compose_text())
    assert isinstance(document, dict)
    return document


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert name in services, f"compose.yaml has no service {name!r}"
    definition = services[name]
    assert isinstance(definition, dict)
    return definition


def scalar_values(node: object) -> list[str]:
    """Every string in a parsed YAML document (keys included): what compose interpolates."""
    if isinstance(node, dict):
        return [
            text
            for key, value in node.items()
            for text in scalar_values(key) + scalar_values(value)
        ]
    if isinstance(node, list):
        return [text for item in node for text in scalar_values(item)]
    return [node] if isinstance(node, str) else []


def interpolate(value: str) -> str:
    """What compose makes of a value when no variable is set: each ``${NAME:-default}`` becomes
    its default and ``$$`` a literal ``$``."""
    return _COMPOSE_DEFAULT.sub(lambda match: match.group(1), value).replace("$$", "$")


def environment(name: str, *, raw: bool = False) -> dict[str, str]:
    """A service's environment (mapping or list form), interpolated unless ``raw``."""
    declared = service(name).get("environment") or {}
    if isinstance(declared, list):
        declared = dict(item.split("=", 1) for item in declared)
    values = {str(key): str(value) for key, value in declared.items()}
    return values if raw else {key: interpolate(value) for key, value in values.items()}


def mounts(name: str) -> dict[str, tuple[str, bool]]:
    """A service's volumes as {target: (source, read_only)}, from the short syntax."""
    result = {}
    for entry in service(name).get("volumes") or []:
        source, target, *options = str(entry).split(":")
        result[target] = (source, "ro" in options)
    return result


def keys_mount(name: str) -> tuple[str, bool]:
    """Where the keys volume is mounted in a service, and whether read-only."""
    found = [(target, ro) for target, (src, ro) in mounts(name).items() if src == KEYS_VOLUME]
    assert len(found) == 1, f"{name} must mount the {KEYS_VOLUME!r} volume exactly once"
    return found[0]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def dockerfile(keyword: str) -> list[str]:
    return [arguments for name, arguments in dockerfile_instructions() if name == keyword]


def dockerfile_env() -> dict[str, str]:
    values: dict[str, str] = {}
    for arguments in dockerfile("ENV"):
        for pair in shlex.split(arguments):
            key, _, value = pair.partition("=")
            values[key] = value
    return values


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        elif pattern[index] == "[":
            end = pattern.index("]", index)
            out, index = out + pattern[index : end + 1], end + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return re.compile(out)


def excluded_from_build_context(path: str) -> bool:
    """Docker's .dockerignore rules: the last matching pattern wins, a pattern that matches a
    folder matches everything in it, and ``!`` re-includes."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    candidates = [path, *(str(parent) for parent in PurePosixPath(path).parents if parent.name)]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        cleaned = pattern.removeprefix("!").strip("/")
        regex = _dockerignore_regex(cleaned)
        if any(regex.fullmatch(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


# --- compose.yaml ---------------------------------------------------------------------------


def test_compose_defines_the_four_services_and_both_volumes() -> None:
    document = compose()

    assert set(document["services"]) == {"db", "migrate", "gateway", "postgrest"}
    assert set(document["volumes"]) == {KEYS_VOLUME, "pgdata", SOCKETS_VOLUME}


def test_every_gateway_variable_in_compose_is_a_setting() -> None:
    named_anywhere = set(re.findall(r"\bGATEWAY_[A-Z0-9_]+", compose_text()))
    set_in_services = {
        key
        for name in compose()["services"]
        for key in environment(name)
        if key.startswith("GATEWAY_")
    }

    assert named_anywhere, "compose.yaml configures the gateway through GATEWAY_* variables"
    assert sorted(named_anywhere - SETTING_VARIABLES) == []
    assert sorted(set_in_services - SETTING_VARIABLES) == []


@pytest.mark.parametrize("name", ["migrate", "gateway"])
def test_the_gateway_containers_settings_are_valid(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The image's ENV first, then compose's environment on top, as Docker applies them.
    for key, value in {**dockerfile_env(), **environment(name)}.items():
        if key.startswith(ENV_PREFIX):
            monkeypatch.setenv(key, value)

    settings = load_settings()

    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.host == "0.0.0.0"


def test_compose_needs_no_variable_set_and_escapes_shell_dollars() -> None:
    # Every compose substitution has a development default, so `docker compose up` works on a
    # fresh checkout; a `$` meant for the container's shell is written `$$`.
    unescaped = [
        value
        for value in scalar_values(compose())
        if re.search(r"\$(?!\{[A-Za-z_][A-Za-z0-9_]*:-)", value.replace("$$", ""))
    ]

    assert unescaped == []


def test_postgrest_is_the_version_the_tests_run() -> None:
    assert service("postgrest")["image"] == "postgrest/postgrest:v12.0.2"
    assert service("postgrest")["image"] == f"postgrest/postgrest:v{POSTGREST_VERSION}"


def test_postgrest_reads_the_jwks_from_the_keys_volume_read_only() -> None:
    secret = environment("postgrest")["PGRST_JWT_SECRET"]
    target, read_only = keys_mount("postgrest")

    assert secret == "@/keys/jwks.json"
    jwks_path = PurePosixPath(secret.removeprefix("@"))
    assert jwks_path.name == JWKS_NAME
    assert str(jwks_path.parent) == target
    assert read_only


def test_postgrest_listens_for_reload_notifications() -> None:
    assert environment("postgrest")["PGRST_DB_CHANNEL_ENABLED"].lower() == "true"


@pytest.mark.parametrize("name", ["migrate", "gateway"])
def test_the_keystore_is_written_to_the_volume_postgrest_reads(name: str) -> None:
    target, read_only = keys_mount(name)

    assert environment(name)["GATEWAY_KEYS_DIR"] == target
    assert not read_only


def test_postgrest_switches_to_the_roles_the_gateway_bootstraps() -> None:
    settings = Settings()  # compose sets no role variable: bootstrap uses these defaults
    postgrest = environment("postgrest")

    assert not {"GATEWAY_ANON_ROLE", "GATEWAY_AUTHENTICATOR_ROLE"} & set(environment("migrate"))
    assert postgrest["PGRST_DB_ANON_ROLE"] == settings.anon_role
    assert urlsplit(postgrest["PGRST_DB_URI"]).username == settings.authenticator_role
    assert postgrest["PGRST_DB_SCHEMAS"].split(",") == settings.postgrest_schemas
    assert settings.database_schema not in settings.postgrest_schemas


def test_notify_goes_to_the_database_postgrest_listens_on() -> None:
    # NOTIFY only reaches listeners on the same database; the gateway sends it to its store
    # when GATEWAY_POSTGREST_NOTIFY_URL is unset, so the store must be PostgREST's database.
    store = urlsplit(environment("gateway")["GATEWAY_DATABASE_URL"])
    postgrest = urlsplit(environment("postgrest")["PGRST_DB_URI"])

    assert "GATEWAY_POSTGREST_NOTIFY_URL" not in environment("gateway")
    assert (store.hostname, store.port, store.path) == (
        postgrest.hostname,
        postgrest.port,
        postgrest.path,
    )
    assert store.hostname == "db"
    assert environment("db")["POSTGRES_DB"] == store.path.lstrip("/")


def test_postgrest_logs_in_with_the_password_bootstrap_sets() -> None:
    command = " ".join(service("migrate")["command"])
    migrate_password = environment("migrate", raw=True)["AUTHENTICATOR_PASSWORD"]
    uri = environment("postgrest", raw=True)["PGRST_DB_URI"]

    assert f":{migrate_password}@" in uri
    assert re.search(
        r"printf '%s' \"\$\$AUTHENTICATOR_PASSWORD\"\s*\|\s*"
        r"gateway postgrest bootstrap --authenticator-password-stdin",
        command,
    )


def test_migrate_prepares_the_database_and_keys_before_anything_starts() -> None:
    migrate = service("migrate")
    command = " ".join(migrate["command"])
    steps = ["gateway db upgrade", "gateway postgrest bootstrap", "gateway keys init"]

    assert migrate["entrypoint"] == ["sh", "-c"]
    assert [command.index(step) for step in steps] == sorted(command.index(s) for s in steps)
    assert "&&" in command
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    assert "pg_isready" in service("db")["healthcheck"]["test"]
    for name in ("gateway", "postgrest"):
        condition = service(name)["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"


def mount_of(service_name: str, volume: str) -> str | None:
    """Where ``service_name`` mounts the named ``volume`` (``volume:/path[:mode]``), if it does."""
    for entry in service(service_name).get("volumes", []):
        name, _, rest = str(entry).partition(":")
        if name == volume:
            return rest.split(":")[0]
    return None


def test_the_gateway_reaches_postgrest_on_its_unix_socket_in_the_shared_volume() -> None:
    upstream = urlsplit(environment("gateway")["GATEWAY_UPSTREAM_URL"])
    socket = PurePosixPath(environment("postgrest")["PGRST_SERVER_UNIX_SOCKET"])

    assert upstream.scheme == "unix"
    assert PurePosixPath(upstream.path) == socket
    # Both see the socket at that path: the same volume, mounted on its folder.
    assert mount_of("gateway", SOCKETS_VOLUME) == str(socket.parent)
    assert mount_of("postgrest", SOCKETS_VOLUME) == str(socket.parent)
    # PostgREST (uid 1000) and the gateway (uid 10001) share no group: the socket must be
    # connectable by others, in a folder PostgREST may create it in.
    assert environment("postgrest")["PGRST_SERVER_UNIX_SOCKET_MODE"] == "666"
    assert "chmod 1777 /sockets" in (ROOT / "Dockerfile").read_text()
    # The empty volume takes the image's /sockets (writable by PostgREST) from the first
    # container that mounts it: migrate, which both others wait for.
    assert mount_of("migrate", SOCKETS_VOLUME) == str(socket.parent)


def test_clients_reach_postgrest_through_the_gateway_only() -> None:
    assert "8000:8000" in service("gateway")["ports"]
    assert "ports" not in service("postgrest"), "clients go through the gateway"


def test_the_gateway_serves_plain_http_only_for_local_development() -> None:
    gateway = environment("gateway")

    assert gateway["GATEWAY_COOKIE_SECURE"] == "false"
    assert gateway["GATEWAY_ISSUER"] == "http://localhost:8000"
    assert "production must serve https" in compose_text().lower()


# --- Dockerfile and .dockerignore -----------------------------------------------------------


def test_the_image_runs_a_python_the_project_supports() -> None:
    (base,) = dockerfile("FROM")
    match = re.fullmatch(r"python:(\d+)\.(\d+)(?:-[a-z0-9.-]+)?", base)
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", pyproject["project"]["requires-python"])

    assert match is not None
    assert minimum is not None
    assert (int(match[1]), int(match[2])) >= (3, 11)
    assert (int(match[1]), int(match[2])) >= (int(minimum[1]), int(minimum[2]))


def test_the_image_installs_exactly_what_uv_lock_pins() -> None:
    runs = dockerfile("RUN")
    syncs = [run for run in runs if "uv sync" in run]

    assert any(re.search(r"pip install .*\buv\b", run) for run in runs)
    assert syncs
    assert all("--locked" in run and "--no-dev" in run for run in syncs)


def test_the_image_installs_the_redis_extra_so_replicas_can_share_the_rate_limit() -> None:
    syncs = [run for run in dockerfile("RUN") if "uv sync" in run]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())

    assert "redis" in pyproject["project"]["optional-dependencies"]
    assert syncs
    assert all("--extra redis" in run for run in syncs)


def test_the_image_runs_as_an_unprivileged_user_postgrest_is_not() -> None:
    user = dockerfile("USER")[-1]
    uid = user.split(":")[0]

    assert uid.isdigit(), "a numeric uid lets orchestrators verify runAsNonRoot"
    assert int(uid) not in (0, POSTGREST_IMAGE_UID)


def test_the_image_serves_and_checks_its_own_health() -> None:
    (healthcheck,) = dockerfile("HEALTHCHECK")
    exec_form = json.loads(healthcheck[healthcheck.index("CMD") + len("CMD") :])

    assert json.loads(dockerfile("ENTRYPOINT")[-1]) == ["gateway"]
    assert json.loads(dockerfile("CMD")[-1]) == ["serve"]
    assert dockerfile_env()["GATEWAY_HOST"] == "0.0.0.0"
    assert exec_form[:2] == ["python", "-c"]
    assert "/healthz" in exec_form[2]
    assert "urllib" in exec_form[2]
    compile(exec_form[2], "<healthcheck>", "exec")


def test_no_key_or_secret_can_enter_the_image() -> None:
    sources = [shlex.split(arguments)[:-1] for arguments in dockerfile("COPY")]

    for source in (path for group in sources for path in group):
        assert source not in {".", "./", "keys", "keys/", ".env"}
        assert not excluded_from_build_context(source), f"COPY {source} is dockerignored"
    for secret in ("keys/manifest.json", "keys/abc.pem", ".env", ".env.local", "gateway.db"):
        assert excluded_from_build_context(secret), f"{secret} would reach the build context"
    for needed in ("pyproject.toml", "uv.lock", "README.md", "gateway/postgrest/sql/helpers.sql"):
        assert not excluded_from_build_context(needed), f"{needed} is missing from the build"


def test_postgrest_openapi_names_the_gateway_mount() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    environment = compose["services"]["postgrest"]["environment"]

    assert environment["PGRST_OPENAPI_SERVER_PROXY_URI"].endswith("/rest")
