"""Settings: read once from GATEWAY_* and .env, refused in one line when invalid."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from gateway.settings import SettingsError, load_settings


def test_defaults_are_the_documented_values() -> None:
    settings = load_settings()

    assert settings.database_url == "sqlite+aiosqlite:///./gateway.db"
    assert settings.keys_dir == "./keys"
    assert settings.upstream_url == "http://127.0.0.1:3000"
    assert settings.proxy_prefix == "/rest"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.issuer == "http://127.0.0.1:8000"
    assert settings.access_token_ttl == 3600
    assert settings.refresh_token_ttl == 2592000
    assert settings.authenticated_role == "authenticated"
    assert settings.allowed_roles == ["authenticated"]
    assert settings.cookie_secure is True
    assert settings.database_schema == "gateway"
    assert settings.signing_alg == "ES256"


def test_environment_variables_with_the_prefix_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PORT", "9001")
    monkeypatch.setenv("GATEWAY_ALLOWED_ROLES", "authenticated, reporting")
    monkeypatch.setenv("GATEWAY_COOKIE_SECURE", "false")

    settings = load_settings()

    assert settings.port == 9001
    assert settings.allowed_roles == ["authenticated", "reporting"]
    assert settings.cookie_secure is False


def test_a_dotenv_file_in_the_working_folder_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("GATEWAY_PORT=9100\nGATEWAY_ISSUER=https://auth.example.com/\n")
    monkeypatch.setenv("GATEWAY_PORT", "9200")

    settings = load_settings()

    assert settings.port == 9200
    assert settings.issuer == "https://auth.example.com"


@pytest.mark.parametrize(
    ("variable", "value", "complaint"),
    [
        ("GATEWAY_PORT", "eighty", "valid integer"),
        ("GATEWAY_PORT", "70000", "less than or equal to 65535"),
        ("GATEWAY_DATABASE_URL", "mysql://root@db/x", "sqlite+aiosqlite://"),
        ("GATEWAY_ALLOWED_ROLES", "authenticated,Robert'); DROP", "SQL identifier"),
        ("GATEWAY_ALLOWED_ROLES", " , ", "at least one"),
        ("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8,proxy.local", "CIDR"),
        ("GATEWAY_PROXY_PREFIX", "rest/", "leading slash"),
        ("GATEWAY_ISSUER", "auth.example.com", "http"),
        ("GATEWAY_COOKIE_SECURE", "maybe", "boolean"),
        ("GATEWAY_SIGNING_ALG", "HS256", "ES256"),
        ("GATEWAY_ACCESS_TOKEN_TTL", "5", "greater than or equal to 30"),
        ("GATEWAY_DATABASE_SCHEMA", "public; drop", "SQL identifier"),
        ("GATEWAY_WORKERS", "many", "or 'auto'"),
        ("GATEWAY_WORKERS", "0", "greater than or equal to 1"),
    ],
)
def test_an_invalid_value_is_refused_in_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, complaint: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(SettingsError) as refused:
        load_settings()

    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"invalid setting {variable}:")
    assert complaint in message


def test_workers_auto_is_one_per_core_this_process_may_run_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_WORKERS", "auto")

    assert load_settings().workers == min(64, len(os.sched_getaffinity(0)))


def test_workers_auto_follows_the_cpu_affinity_not_the_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A container or `taskset` narrows the cores a process may use; one worker per core of the
    # machine would then oversubscribe the few it has.
    monkeypatch.setenv("GATEWAY_WORKERS", "AUTO")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})

    assert load_settings().workers == 1


def test_the_authenticated_role_must_be_in_the_allow_list(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_AUTHENTICATED_ROLE", "web_user")

    with pytest.raises(SettingsError, match="GATEWAY_AUTHENTICATED_ROLE 'web_user' is not in"):
        load_settings()


def test_a_redis_url_without_the_redis_extra_is_refused_in_one_line_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules makes the module unimportable, as in an install without the extra.
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setenv("GATEWAY_REDIS_URL", "redis://:s3cret-pw@cache:6379/0")

    with pytest.raises(SettingsError) as refused:
        load_settings()

    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("invalid setting GATEWAY_REDIS_URL:")
    assert "install postgrest-gateway[redis]" in message
    assert "s3cret" not in message


def test_without_a_redis_url_the_redis_extra_is_not_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)

    assert load_settings().redis_url is None


def test_secrets_stay_out_of_the_settings_repr_and_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "postgresql+asyncpg://app:s3cret-pw@db/app")
    monkeypatch.setenv("GATEWAY_KEYS_PASSPHRASE", "another-s3cret")

    settings = load_settings()
    assert "s3cret" not in repr(settings)

    monkeypatch.setenv("GATEWAY_DATABASE_URL", "mysql://app:s3cret-pw@db/app")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "s3cret" not in str(refused.value)


def test_a_unix_socket_upstream_is_accepted_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_UPSTREAM_URL", "unix:///run/postgrest/postgrest.sock")

    assert load_settings().upstream_url == "unix:///run/postgrest/postgrest.sock"


@pytest.mark.parametrize(
    "value",
    [
        "unix://run/postgrest.sock",  # a host, not an absolute path
        "unix://user@/run/postgrest.sock",
        "unix:///run/postgrest.sock?mode=x",
        "unix:///run/postgrest.sock#x",
        "unix:///run/../etc/postgrest.sock",
        "unix:///run/postgrest/",
        "unix:relative.sock",
        "unix://",
        "unix:///run/post\x01grest.sock",
    ],
)
def test_a_unix_socket_upstream_must_be_an_absolute_path_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("GATEWAY_UPSTREAM_URL", value)

    with pytest.raises(SettingsError, match="GATEWAY_UPSTREAM_URL"):
        load_settings()


def test_the_keystore_is_the_directory_by_default() -> None:
    assert load_settings().keystore == "directory"


def test_the_database_keystore_needs_a_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_KEYSTORE", "database")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    message = str(caught.value)
    assert "GATEWAY_KEYSTORE=database" in message
    assert "GATEWAY_KEYS_PASSPHRASE" in message
    assert "GATEWAY_KEYS_PASSPHRASE_FILE" in message
    assert "\n" not in message


def test_an_empty_passphrase_does_not_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_KEYSTORE", "database")
    monkeypatch.setenv("GATEWAY_KEYS_PASSPHRASE", "")

    with pytest.raises(SettingsError, match="needs GATEWAY_KEYS_PASSPHRASE"):
        load_settings()


def test_an_unknown_keystore_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_KEYSTORE", "redis")

    with pytest.raises(SettingsError, match="GATEWAY_KEYSTORE"):
        load_settings()


def test_the_passphrase_file_is_read_once_without_its_trailing_newline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("two words, long enough\n")
    secret.chmod(0o600)
    monkeypatch.setenv("GATEWAY_KEYS_PASSPHRASE_FILE", str(secret))
    monkeypatch.setenv("GATEWAY_KEYSTORE", "database")

    config = load_settings()
    secret.write_text("changed later\n")

    assert config.keys_passphrase is not None
    assert config.keys_passphrase.get_secret_value() == "two words, long enough"
    assert "two words" not in repr(config)


def test_a_passphrase_and_a_passphrase_file_together_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("from the file\n")
    secret.chmod(0o600)
    monkeypatch.setenv("GATEWAY_KEYS_PASSPHRASE_FILE", str(secret))
    monkeypatch.setenv("GATEWAY_KEYS_PASSPHRASE", "from the variable")

    with pytest.raises(SettingsError, match="not both"):
        load_settings()


def test_a_missing_or_empty_passphrase_file_is_refused_without_its_content(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEWAY_KEYS_PASSPHRASE_FILE", str(tmp_path / "absent"))
    with pytest.raises(SettingsError, match="cannot be read"):
        load_settings()

    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    monkeypatch.setenv("GATEWAY_KEYS_PASSPHRASE_FILE", str(empty))
    with pytest.raises(SettingsError, match="is empty"):
        load_settings()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_a_passphrase_file_its_group_or_others_may_read_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: int
) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("a secret long enough to count\n")
    secret.chmod(mode)
    monkeypatch.setenv("GATEWAY_KEYS_PASSPHRASE_FILE", str(secret))

    with pytest.raises(SettingsError) as caught:
        load_settings()

    message = str(caught.value)
    assert "GATEWAY_KEYS_PASSPHRASE_FILE" in message
    assert f"{mode:04o}" in message
    assert "chmod 600" in message
    assert "a secret" not in message
    assert "\n" not in message


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_a_passphrase_file_for_its_owner_only_is_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: int
) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("a secret long enough to count\n")
    secret.chmod(mode)
    monkeypatch.setenv("GATEWAY_KEYS_PASSPHRASE_FILE", str(secret))

    assert load_settings().keys_passphrase_value == "a secret long enough to count"


def test_the_database_keystore_refuses_a_short_passphrase_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_KEYSTORE", "database")
    monkeypatch.setenv("GATEWAY_KEYS_PASSPHRASE", "fifteen chars!!")

    with pytest.raises(SettingsError) as caught:
        load_settings()

    message = str(caught.value)
    assert "at least 16 characters" in message
    assert "fifteen" not in message
    assert "\n" not in message

    monkeypatch.setenv("GATEWAY_KEYS_PASSPHRASE", "sixteen chars!!!")
    assert load_settings().keys_passphrase_value == "sixteen chars!!!"


def test_the_directory_keystore_keeps_taking_a_short_passphrase(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_KEYS_PASSPHRASE", "short")

    assert load_settings().keys_passphrase_value == "short"
