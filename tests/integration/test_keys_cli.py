"""``gateway keys``: the operator's view of the keystore, its refusals, and PostgREST reloads."""

from __future__ import annotations

import asyncio
import base64
import json
import resource
import signal
import subprocess
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from click.testing import CliRunner, Result

from gateway.cli import cli
from gateway.errors import InvalidInput
from gateway.postgrest.notify import PostgrestNotifyFailed, notify_postgrest
from gateway.store.engine import asyncpg_dsn
from tests.conftest import sqlalchemy_url
from tests.support.cli import run_cli

# Nothing listens on port 1 of the loopback: a connection is refused at once.
UNREACHABLE_DATABASE = "postgresql://gateway@127.0.0.1:1/gateway"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"GATEWAY_KEYS_DIR": str(tmp_path / "keys"), "GATEWAY_JWKS_MAX_AGE": "0"}


def keys_dir(env: dict[str, str]) -> Path:
    return Path(env["GATEWAY_KEYS_DIR"])


def gateway(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(cli, ["keys", *args], env=env)


def gateway_json(env: dict[str, str], *args: str) -> Any:
    result = gateway(env, *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def gateway_process(
    env: dict[str, str], *args: str, file_size_limit: int | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own, optionally with a file size limit (a full disk)."""

    def limit_file_size() -> None:
        if file_size_limit is not None:
            # A write past the limit then fails with EFBIG instead of killing the process.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return run_cli(env, None, "keys", *args, before_exec=limit_file_size)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.iterdir() if path.is_file()}


@pytest.fixture
def keystore(env: dict[str, str]) -> dict[str, str]:
    assert gateway(env, "init").exit_code == 0
    return env


def test_help_lists_the_keys_commands() -> None:
    result = CliRunner().invoke(cli, ["keys", "--help"])

    assert result.exit_code == 0
    for command in ("init", "list", "rotate", "prune", "export-jwks", "anon-key"):
        assert command in result.stdout


def test_init_creates_a_keystore_and_reports_it(env: dict[str, str]) -> None:
    document = gateway_json(env, "init")

    assert document["created"] is True
    assert document["current"] != document["next"]
    assert (keys_dir(env) / "jwks.json").exists()


def test_init_leaves_an_existing_keystore_alone(keystore: dict[str, str]) -> None:
    before = snapshot(keys_dir(keystore))

    document = gateway_json(keystore, "init")

    assert document["created"] is False
    assert snapshot(keys_dir(keystore)) == before


def test_list_json_shows_each_keys_kid_alg_state_and_times(keystore: dict[str, str]) -> None:
    document = gateway_json(keystore, "list")

    assert [key["state"] for key in document["keys"]] == ["current", "next"]
    for key in document["keys"]:
        assert set(key) == {"kid", "alg", "state", "created_at", "activated_at", "retired_at"}
        assert key["alg"] == "ES256"
        assert key["created_at"].endswith("Z")


def test_list_text_names_every_key(keystore: dict[str, str]) -> None:
    kids = [key["kid"] for key in gateway_json(keystore, "list")["keys"]]

    result = gateway(keystore, "list")

    assert result.exit_code == 0
    assert all(kid in result.stdout for kid in kids)


def test_rotate_json_reports_the_new_current_next_and_retiring_keys(
    keystore: dict[str, str],
) -> None:
    before = gateway_json(keystore, "list")["keys"]

    document = gateway_json(keystore, "rotate")

    assert document["current"] == before[1]["kid"]
    assert document["retiring"] == [before[0]["kid"]]
    assert document["next"] not in {key["kid"] for key in before}
    assert document["notified"] is False
    jwks = json.loads((keys_dir(keystore) / "jwks.json").read_bytes())
    assert {jwk["kid"] for jwk in jwks["keys"]} == {
        document["current"],
        document["next"],
        *document["retiring"],
    }


def test_rotate_refuses_a_young_next_key_with_one_line(keystore: dict[str, str]) -> None:
    young = {**keystore, "GATEWAY_JWKS_MAX_AGE": "300"}
    before = snapshot(keys_dir(keystore))

    result = gateway(young, "rotate")

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "--force" in result.stderr
    assert snapshot(keys_dir(keystore)) == before


def test_rotate_with_force_accepts_a_young_next_key(keystore: dict[str, str]) -> None:
    young = {**keystore, "GATEWAY_JWKS_MAX_AGE": "300"}

    result = gateway(young, "rotate", "--force")

    assert result.exit_code == 0, result.stderr


def test_prune_json_keeps_keys_with_live_tokens_and_force_drops_them(
    keystore: dict[str, str],
) -> None:
    retired = gateway_json(keystore, "rotate")["retiring"]

    assert gateway_json(keystore, "prune") == {"pruned": [], "notified": False}
    assert gateway_json(keystore, "prune", "--force") == {"pruned": retired, "notified": False}
    assert [key["state"] for key in gateway_json(keystore, "list")["keys"]] == [
        "current",
        "next",
    ]


def test_export_jwks_writes_the_default_file(keystore: dict[str, str]) -> None:
    jwks_path = keys_dir(keystore) / "jwks.json"
    jwks_path.unlink()

    result = gateway(keystore, "export-jwks")

    assert result.exit_code == 0, result.stderr
    assert str(jwks_path) in result.stdout
    assert len(json.loads(jwks_path.read_bytes())["keys"]) == 2


def test_export_jwks_writes_a_chosen_path_or_stdout(
    keystore: dict[str, str], tmp_path: Path
) -> None:
    target = tmp_path / "for-postgrest.json"

    to_file = gateway(keystore, "export-jwks", str(target))
    to_stdout = gateway(keystore, "export-jwks", "-")

    assert to_file.exit_code == 0, to_file.stderr
    assert target.read_bytes() == (keys_dir(keystore) / "jwks.json").read_bytes()
    assert to_stdout.stdout == target.read_text()


def test_commands_on_a_missing_keystore_say_how_to_create_one(env: dict[str, str]) -> None:
    for command in ("list", "rotate", "prune", "export-jwks", "anon-key"):
        result = gateway(env, command)

        assert result.exit_code == 1
        assert result.stderr.startswith("gateway: error: no keystore in")
        assert "gateway keys init" in result.stderr
        assert "Traceback" not in result.output
    assert not keys_dir(env).exists()


def test_a_keys_dir_under_a_file_gives_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    env = {"GATEWAY_KEYS_DIR": str(tmp_path / "file" / "keys")}

    result = gateway(env, "init")

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "not a directory" in result.stderr


def test_an_unwritable_keystore_refuses_rotation_and_keeps_its_keys(
    keystore: dict[str, str],
) -> None:
    directory = keys_dir(keystore)
    (directory / ".lock").unlink()
    (directory / ".lock").mkdir()  # the lock cannot be taken: nothing may be written
    before = snapshot(directory)

    result = gateway(keystore, "rotate")

    assert result.exit_code == 1
    assert result.stderr.startswith("gateway: error:")
    assert snapshot(directory) == before


def test_a_full_disk_during_rotation_leaves_the_old_keystore_intact(
    keystore: dict[str, str],
) -> None:
    directory = keys_dir(keystore)
    before = snapshot(directory)
    # Room for a new key file (about 240 bytes) but not for the manifest (about 740 bytes).
    result = gateway_process(keystore, "rotate", file_size_limit=400)

    assert result.returncode == 1
    assert "file size limit" in result.stderr
    assert "left unchanged" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot(directory) == before
    assert gateway_json(keystore, "list")["keys"][0]["state"] == "current"


def test_an_encrypted_keystore_without_its_passphrase_gives_one_clear_line(
    env: dict[str, str],
) -> None:
    encrypted = {**env, "GATEWAY_KEYS_PASSPHRASE": "correct horse battery staple"}
    assert gateway(encrypted, "init").exit_code == 0

    result = gateway(env, "rotate")

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "GATEWAY_KEYS_PASSPHRASE" in result.stderr
    assert gateway(encrypted, "rotate").exit_code == 0


# Telling PostgREST


def test_a_failed_notification_is_a_warning_not_a_failed_rotation(
    keystore: dict[str, str],
) -> None:
    unreachable = {**keystore, "GATEWAY_POSTGREST_NOTIFY_URL": UNREACHABLE_DATABASE}
    before = gateway_json(keystore, "list")["keys"]

    result = gateway(unreachable, "rotate", "--json")

    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("gateway: warning:")
    assert "PostgREST was not told to reload" in result.stderr
    assert json.loads(result.stdout)["notified"] is False
    assert gateway_json(keystore, "list")["keys"][0]["kid"] == before[1]["kid"]


@pytest.mark.postgres
def test_rotate_tells_postgrest_to_reload_its_config(
    keystore: dict[str, str], postgres_url: str
) -> None:
    notified = {**keystore, "GATEWAY_POSTGREST_NOTIFY_URL": sqlalchemy_url(postgres_url)}

    async def rotate_while_listening() -> tuple[subprocess.CompletedProcess[str], str]:
        received: asyncio.Queue[str] = asyncio.Queue()
        connection = await asyncpg.connect(postgres_url)
        try:
            await connection.add_listener("pgrst", lambda *args: received.put_nowait(str(args[3])))
            result = await asyncio.to_thread(
                gateway_process, notified, "rotate", "--force", "--json"
            )
            payload = await asyncio.wait_for(received.get(), timeout=10)
        finally:
            await connection.close()
        return result, payload

    result, payload = asyncio.run(rotate_while_listening())

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["notified"] is True
    assert payload == "reload config"


async def test_notify_refuses_a_payload_postgrest_does_not_define() -> None:
    with pytest.raises(InvalidInput):
        await notify_postgrest(UNREACHABLE_DATABASE, "reload config'; DROP TABLE users; --")


async def test_notify_reports_an_unreachable_database_as_a_typed_error() -> None:
    with pytest.raises(PostgrestNotifyFailed):
        await notify_postgrest(UNREACHABLE_DATABASE)


def test_notify_accepts_sqlalchemy_urls() -> None:
    assert asyncpg_dsn("postgresql+asyncpg://u:p@db:5432/app") == "postgresql://u:p@db:5432/app"
    assert asyncpg_dsn("postgresql://db/app") == "postgresql://db/app"
    with pytest.raises(InvalidInput):
        asyncpg_dsn("sqlite+aiosqlite:///./gateway.db")


def test_anon_key_prints_a_token_of_the_anon_role_signed_by_the_current_key(
    keystore: dict[str, str],
) -> None:
    document = gateway_json(keystore, "anon-key")
    text = gateway(keystore, "anon-key")

    current = gateway_json(keystore, "list")["keys"]
    assert document["kid"] == next(k["kid"] for k in current if k["state"] == "current")
    assert document["role"] == "anon"
    header = json.loads(base64.urlsafe_b64decode(document["anon_key"].split(".")[0] + "=="))
    assert header["kid"] == document["kid"]
    assert text.exit_code == 0
    assert text.stdout.count(".") == 2
    assert text.stdout.strip() != document["anon_key"]  # a fresh jti each time


def test_prune_warns_that_the_anon_keys_of_the_pruned_keys_stop_working(
    keystore: dict[str, str],
) -> None:
    gateway_json(keystore, "rotate", "--force")

    result = gateway(keystore, "prune", "--force")

    assert result.exit_code == 0, result.stderr
    assert "anon keys signed by" in result.stderr
    assert "gateway keys anon-key" in result.stderr
