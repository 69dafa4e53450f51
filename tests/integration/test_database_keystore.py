"""GATEWAY_KEYSTORE=database: the keystore in the store, on SQLite and a real PostgreSQL.

Its lifecycle is the directory keystore's (the same decisions, see tokens/_lifecycle.py), its
private keys are sealed, two hosts rotating at once make one rotation, a running holder picks a
rotation up, ``gateway keys migrate --to database`` copies a directory keystore, and a gateway
process serves from it without any keys directory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from sqlalchemy import delete, insert, select, update

from gateway.settings import Settings
from gateway.store import KeystoreState, SigningKey, make_engine, make_sessionmaker
from gateway.store.lifecycle import migrate_store
from gateway.tokens import (
    KeyPassphraseError,
    KeyRingHolder,
    KeystoreCorrupt,
    KeystoreMissing,
    RotationRefused,
    ensure_keystore,
    export_jwks,
    load_keystore,
    migrate_to_database,
    prune_keys,
    read_manifest,
    rotate_keys,
)
from tests.conftest import dump_store, settings_from
from tests.support.cli import cli_command, cli_environment, cli_stdout, run_cli
from tests.support.server import run_gateway
from tests.support.waiting import wait_for_async

PASSPHRASE = "correct horse battery staple"
PICKUP_DEADLINE_SECONDS = 2.0
#: A bound only a hang exceeds (a stalled store must not freeze a reload or stop()).
HANG_GUARD_SECONDS = 10.0
T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def db_env(store_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A migrated empty store, and the variables of a database keystore in it."""
    env = {
        **store_env,
        "GATEWAY_KEYSTORE": "database",
        "GATEWAY_KEYS_PASSPHRASE": PASSPHRASE,
        "GATEWAY_KEYS_DIR": str(tmp_path / "keys"),
        "GATEWAY_JWKS_MAX_AGE": "300",
    }
    asyncio.run(migrate_store(settings_from(store_env)))
    return env


@pytest.fixture
def db_settings(db_env: dict[str, str]) -> Settings:
    return settings_from(db_env)


def states(settings: Settings) -> list[tuple[str, str]]:
    return [(record.kid, record.state) for record in read_manifest(settings).keys]


def update_rows(settings: Settings, kid: str, **values: Any) -> None:
    async def run() -> None:
        engine = make_engine(settings)
        try:
            async with make_sessionmaker(engine).begin() as db:
                await db.execute(update(SigningKey).where(SigningKey.kid == kid).values(**values))
        finally:
            await engine.dispose()

    asyncio.run(run())


def sealed_of(settings: Settings, kid: str) -> bytes:
    async def run() -> bytes:
        engine = make_engine(settings)
        try:
            async with make_sessionmaker(engine)() as db:
                value = await db.scalar(select(SigningKey.sealed).where(SigningKey.kid == kid))
                assert value is not None
                return value
        finally:
            await engine.dispose()

    return asyncio.run(run())


# --- lifecycle: the directory keystore's, step by step -------------------------------------


def lifecycle_trace(settings: Settings) -> list[Any]:
    """The same sequence of changes and refusals, told as states and outcomes (no kids)."""
    trace: list[Any] = []
    trace.append(ensure_keystore(settings, now=T0))
    trace.append(ensure_keystore(settings, now=T0))
    for moment, force in (
        (T0 + timedelta(seconds=599), False),  # younger than 2 x 300 s: refused
        (T0 + timedelta(seconds=600), False),  # exactly twice the max age: allowed
        (T0 + timedelta(seconds=601), True),  # young, but forced
    ):
        upcoming = read_manifest(settings).next.kid
        try:
            rotate_keys(settings, force=force, now=moment)
            trace.append("rotated")
        except RotationRefused as exc:
            trace.append(("refused", exc.message.replace(upcoming, "<kid>")))
    manifest = read_manifest(settings)
    trace.append([(r.state, r.created_at, r.activated_at, r.retired_at) for r in manifest.keys])
    ttl = settings.access_token_ttl
    for moment, force in (
        (T0 + timedelta(seconds=600 + ttl + 29), False),  # the first retired key's tokens live
        (T0 + timedelta(seconds=600 + ttl + 30), False),  # ttl + 30 s margin: dropped
        (T0 + timedelta(seconds=600 + ttl + 31), True),  # the rest, forced
        (T0 + timedelta(seconds=600 + ttl + 32), True),  # nothing left to drop
    ):
        trace.append(len(prune_keys(settings, force=force, now=moment)))
    trace.append([record.state for record in read_manifest(settings).keys])
    return trace


def test_the_lifecycle_is_the_directory_keystores(db_settings: Settings, tmp_path: Path) -> None:
    directory = Settings(keys_dir=str(tmp_path / "dir-keys"), jwks_max_age=300)

    in_store = lifecycle_trace(db_settings)

    assert in_store == lifecycle_trace(directory)
    assert in_store[:2] == [True, False]
    assert in_store[2][1].startswith("the next key <kid> was created 599 s ago")
    assert in_store[2][1].endswith(
        "rotate again in 1 s, or use --force once every verifier has reloaded the JWKS"
    )
    assert in_store[-1] == ["current", "next"]
    assert not (tmp_path / "keys").exists()


def test_a_refused_rotation_changes_nothing(db_settings: Settings) -> None:
    ensure_keystore(db_settings)
    before = dump_store(db_settings)

    with pytest.raises(RotationRefused, match="rotate again in"):
        rotate_keys(db_settings)

    assert dump_store(db_settings) == before


def test_a_rotation_publishes_the_old_current_key_and_signs_with_the_next(
    db_settings: Settings,
) -> None:
    ensure_keystore(db_settings)
    before = read_manifest(db_settings)

    after = rotate_keys(db_settings, force=True)

    assert after.current.kid == before.next.kid
    assert [key.kid for key in after.retiring] == [before.current.kid]
    published = {jwk["kid"] for jwk in load_keystore(db_settings).jwks()["keys"]}
    assert published == {before.current.kid, before.next.kid, after.next.kid}


def test_nothing_is_written_to_the_keys_directory(db_settings: Settings, tmp_path: Path) -> None:
    ensure_keystore(db_settings)
    rotate_keys(db_settings, force=True)

    with pytest.raises(KeystoreMissing, match="give the file"):
        export_jwks(db_settings)
    copy = export_jwks(db_settings, tmp_path / "copy.json")

    assert not (tmp_path / "keys").exists()
    assert {jwk["kid"] for jwk in json.loads(copy.read_bytes())["keys"]} == {
        record.kid for record in read_manifest(db_settings).keys
    }


def test_reading_an_empty_store_says_how_to_make_a_keystore(db_settings: Settings) -> None:
    with pytest.raises(KeystoreMissing, match="gateway keys init"):
        load_keystore(db_settings)
    with pytest.raises(KeystoreMissing, match="migrate --to database"):
        rotate_keys(db_settings, force=True)


# --- encryption at rest --------------------------------------------------------------------


def test_a_wrong_passphrase_is_refused_with_a_clear_error(db_settings: Settings) -> None:
    ensure_keystore(db_settings)
    wrong = settings_from(
        {}, **{**_fields(db_settings), "keys_passphrase": "not the passphrase at all"}
    )

    for attempt in (load_keystore, ensure_keystore):
        with pytest.raises(KeyPassphraseError, match="encrypted with another passphrase"):
            attempt(wrong)
    with pytest.raises(KeyPassphraseError):
        rotate_keys(wrong, force=True)


def _fields(settings: Settings) -> dict[str, Any]:
    return {
        "database_url": settings.database_url,
        "database_schema": settings.database_schema,
        "keystore": "database",
        "keys_dir": settings.keys_dir,
    }


def test_a_sealed_key_moved_to_another_row_is_refused(db_settings: Settings) -> None:
    ensure_keystore(db_settings)
    manifest = read_manifest(db_settings)
    current, upcoming = manifest.current.kid, manifest.next.kid
    update_rows(db_settings, upcoming, sealed=sealed_of(db_settings, current))

    with pytest.raises(KeystoreCorrupt, match=f"{upcoming} does not open"):
        load_keystore(db_settings)


# --- the manifest MAC: rows changed without the passphrase ---------------------------------

TAMPERED = "the keystore in the store was changed without the passphrase"
ROW_COLUMNS = ("kid", "alg", "state", "created_at", "activated_at", "retired_at", "sealed")
STATE_COLUMNS = ("version", "kdf", "kek_salt", "kek_check", "manifest_mac", "updated_at")


def snapshot(settings: Settings) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The signing_keys rows and the state row, as an attacker with a store backup has them."""

    async def run() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        engine = make_engine(settings)
        try:
            async with make_sessionmaker(engine)() as db:
                rows = [
                    {name: getattr(row, name) for name in ROW_COLUMNS}
                    for row in await db.scalars(select(SigningKey))
                ]
                state = await db.scalar(select(KeystoreState))
                assert state is not None
                return rows, {name: getattr(state, name) for name in STATE_COLUMNS}
        finally:
            await engine.dispose()

    return asyncio.run(run())


def write_store(
    settings: Settings, rows: list[dict[str, Any]], state: dict[str, Any] | None = None
) -> None:
    """Replace the rows (and the state row's values) with SQL alone: no passphrase."""

    async def run() -> None:
        engine = make_engine(settings)
        try:
            async with make_sessionmaker(engine).begin() as db:
                await db.execute(delete(SigningKey))
                await db.execute(insert(SigningKey), rows)
                if state is not None:
                    await db.execute(update(KeystoreState).values(**state))
                else:  # a bumped version, as a replica would notice
                    await db.execute(
                        update(KeystoreState).values(version=KeystoreState.version + 1)
                    )
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_a_pruned_key_put_back_as_current_is_refused(db_settings: Settings) -> None:
    ensure_keystore(db_settings, now=T0)
    leaked = read_manifest(db_settings).current.kid
    old_rows, _ = snapshot(db_settings)
    rotate_keys(db_settings, force=True, now=T0 + timedelta(hours=1))
    prune_keys(db_settings, force=True, now=T0 + timedelta(hours=2))
    rows, _ = snapshot(db_settings)
    assert leaked not in {row["kid"] for row in rows}

    current = next(row for row in rows if row["state"] == "current")
    current.update(state="retiring", retired_at=T0 + timedelta(hours=3))
    write_store(db_settings, [*rows, next(row for row in old_rows if row["kid"] == leaked)])

    for attempt in (load_keystore, read_manifest):
        with pytest.raises(KeystoreCorrupt, match=TAMPERED):
            attempt(db_settings)
    with pytest.raises(KeystoreCorrupt, match=TAMPERED):
        rotate_keys(db_settings, force=True)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"state": "current"}, id="next promoted early"),
        pytest.param({"created_at": T0 - timedelta(days=30)}, id="next backdated"),
    ],
)
def test_a_changed_state_or_time_is_refused(db_settings: Settings, change: dict[str, Any]) -> None:
    ensure_keystore(db_settings, now=T0)
    rows, _ = snapshot(db_settings)
    for row in rows:
        if row["state"] == "next":
            row.update(change)
        elif "state" in change:  # the states swapped, so the manifest still parses
            row.update(state="next")
    write_store(db_settings, rows)

    with pytest.raises(KeystoreCorrupt, match=TAMPERED):
        load_keystore(db_settings)
    with pytest.raises(KeystoreCorrupt, match=TAMPERED):
        rotate_keys(db_settings, now=T0 + timedelta(minutes=5))  # the backdate would allow it


def test_a_moved_retired_at_is_refused(db_settings: Settings) -> None:
    ensure_keystore(db_settings, now=T0)
    rotate_keys(db_settings, force=True, now=T0 + timedelta(hours=1))
    rows, _ = snapshot(db_settings)
    for row in rows:
        if row["state"] == "retiring":
            row["retired_at"] = T0 - timedelta(days=30)  # would make it prunable at once
    write_store(db_settings, rows)

    with pytest.raises(KeystoreCorrupt, match=TAMPERED):
        prune_keys(db_settings, now=T0 + timedelta(hours=1, minutes=1))


def test_keys_list_checks_the_passphrase_and_the_mac(
    db_env: dict[str, str], db_settings: Settings, tmp_path: Path
) -> None:
    ensure_keystore(db_settings, now=T0)
    wrong = {**db_env, "GATEWAY_KEYS_PASSPHRASE": "a wrong but long passphrase"}

    refused = run_cli(wrong, tmp_path, "keys", "list")
    assert refused.returncode == 1
    assert "encrypted with another passphrase" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert "a wrong but long passphrase" not in refused.stderr + refused.stdout

    rows, _ = snapshot(db_settings)
    rows[0]["created_at"] = T0 - timedelta(days=1)
    write_store(db_settings, rows)
    tampered = run_cli(db_env, tmp_path, "keys", "list")
    assert tampered.returncode == 1
    assert TAMPERED in tampered.stderr
    assert len(tampered.stderr.strip().splitlines()) == 1


def test_the_store_holds_no_private_key_in_clear(db_settings: Settings) -> None:
    ensure_keystore(db_settings)
    store = load_keystore(db_settings)
    rows = repr(dump_store(db_settings))

    for key in store.keys:
        scalar = key.private_key.private_numbers().private_value  # type: ignore[union-attr]
        assert scalar.to_bytes(32, "big").hex() not in rows
        assert repr(scalar.to_bytes(32, "big"))[2:-1] not in rows
    assert PASSPHRASE not in rows


def test_migrate_without_a_passphrase_is_refused(db_env: dict[str, str], tmp_path: Path) -> None:
    env = {**db_env, "GATEWAY_KEYSTORE": "directory"}
    del env["GATEWAY_KEYS_PASSPHRASE"]
    cli_stdout(env, tmp_path, "keys", "init")

    result = run_cli(env, tmp_path, "keys", "migrate", "--to", "database")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("gateway: error: ")
    assert "GATEWAY_KEYS_PASSPHRASE" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_without_a_passphrase_is_refused_in_one_line(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    env = dict(db_env)
    del env["GATEWAY_KEYS_PASSPHRASE"]

    result = run_cli(env, tmp_path, "serve")

    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "GATEWAY_KEYSTORE=database needs GATEWAY_KEYS_PASSPHRASE" in result.stderr


# --- gateway keys migrate --to database ---------------------------------------------------


def test_migrate_copies_the_directory_keystore_and_is_idempotent(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    directory_env = {**db_env, "GATEWAY_KEYSTORE": "directory"}
    cli_stdout(directory_env, tmp_path, "keys", "init")
    cli_stdout(directory_env, tmp_path, "keys", "rotate", "--force")
    directory = settings_from(directory_env)
    source = load_keystore(directory)
    signed = jwt.encode(
        {"sub": "1"},
        source.current.private_key,
        algorithm="ES256",
        headers={"kid": source.current.kid},
    )

    first = run_cli(directory_env, tmp_path, "keys", "migrate", "--to", "database")
    again = json.loads(
        cli_stdout(directory_env, tmp_path, "keys", "migrate", "--to", "database", "--json")
    )

    assert first.returncode == 0, first.stderr
    assert "copied 3 keys into the store" in first.stdout
    assert "copying the keystore of" in first.stderr
    assert again["copied"] is False
    in_store = load_keystore(settings_from(db_env))
    assert in_store.manifest == source.manifest  # same kids, states and times
    assert in_store.current.kid == source.current.kid
    assert in_store.jwks() == source.jwks()
    jwk = jwt.PyJWK(in_store.current.public_jwk)
    assert jwt.decode(signed, jwk, algorithms=["ES256"]) == {"sub": "1"}


def test_migrate_refuses_a_store_that_holds_another_keystore(
    db_env: dict[str, str], db_settings: Settings, tmp_path: Path
) -> None:
    ensure_keystore(db_settings)
    directory_env = {**db_env, "GATEWAY_KEYSTORE": "directory"}
    cli_stdout(directory_env, tmp_path, "keys", "init")
    before = dump_store(db_settings)

    result = run_cli(directory_env, tmp_path, "keys", "migrate", "--to", "database")

    assert result.returncode == 1
    assert "already holds another keystore" in result.stderr
    assert "Traceback" not in result.stderr
    assert dump_store(db_settings) == before


def test_migrate_in_process_returns_what_it_copied(db_env: dict[str, str], tmp_path: Path) -> None:
    directory = settings_from({**db_env, "GATEWAY_KEYSTORE": "directory"})
    ensure_keystore(directory)

    source, copied = migrate_to_database(directory)
    _, copied_again = migrate_to_database(directory)

    assert (copied, copied_again) == (True, False)
    assert read_manifest(settings_from(db_env)) == source.manifest


def test_migrate_reads_the_directory_under_its_lock(
    db_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from filelock import FileLock, Timeout

    from gateway.tokens import _reading

    directory = settings_from({**db_env, "GATEWAY_KEYSTORE": "directory"})
    ensure_keystore(directory)
    lock_path = Path(directory.keys_dir) / ".lock"
    held_while_read: list[bool] = []
    real_load = _reading.load

    def load_and_probe(*args: Any, **kwargs: Any) -> Any:
        probe = FileLock(lock_path, timeout=0, is_singleton=False)
        try:
            probe.acquire()
        except Timeout:
            held_while_read.append(True)  # a rotation or prune would wait for the copy
        else:
            probe.release()
            held_while_read.append(False)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(_reading, "load", load_and_probe)

    _, copied = migrate_to_database(directory)

    assert copied
    assert held_while_read == [True]


# --- replicas ------------------------------------------------------------------------------


async def wait_for_current_kid(holder: KeyRingHolder, kid: str) -> bool:
    return await wait_for_async(lambda: holder.ring.current_kid == kid, PICKUP_DEADLINE_SECONDS)


async def test_a_running_holder_picks_up_a_rotation_made_by_another_process(
    db_env: dict[str, str], db_settings: Settings, tmp_path: Path
) -> None:
    await asyncio.to_thread(ensure_keystore, db_settings)
    async with KeyRingHolder(db_settings) as holder:
        before = holder.ring
        output = await asyncio.to_thread(
            cli_stdout, db_env, tmp_path, "keys", "rotate", "--force", "--json"
        )
        rotated_to = json.loads(output)["current"]

        assert await wait_for_current_kid(holder, rotated_to)
        assert before.current_kid in holder.ring.kids
        assert not await holder.refresh()  # the version is unchanged: no reload


async def test_a_holder_refuses_a_store_rolled_back_to_an_older_version_and_logs_once(
    db_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    await asyncio.to_thread(ensure_keystore, db_settings)
    old_rows, old_state = await asyncio.to_thread(snapshot, db_settings)
    async with KeyRingHolder(db_settings) as holder:
        rotated = (await asyncio.to_thread(rotate_keys, db_settings, force=True)).current.kid
        assert await wait_for_current_kid(holder, rotated)
        # A backup of the older keystore put back whole: its MAC is genuine, its version older.
        await asyncio.to_thread(write_store, db_settings, old_rows, old_state)
        with caplog.at_level(logging.WARNING, logger="gateway.tokens.watcher"):
            results = [await holder.refresh() for _ in range(3)]

        assert results == [False, False, False]
        assert holder.ring.current_kid == rotated
    warnings = [r for r in caplog.records if "keeping the previous" in r.getMessage()]
    assert len(warnings) == 1
    assert "older than" in warnings[0].getMessage()


async def test_a_holder_refuses_to_start_on_an_empty_store(db_settings: Settings) -> None:
    with pytest.raises(KeystoreMissing):
        await KeyRingHolder(db_settings).start()


@pytest.mark.postgres
def test_two_hosts_rotating_at_once_make_one_rotation(postgres_url: str, tmp_path: Path) -> None:
    schema = "keystore_race"
    env = {
        "GATEWAY_DATABASE_URL": postgres_url.replace("postgresql://", "postgresql+asyncpg://"),
        "GATEWAY_DATABASE_SCHEMA": schema,
        "GATEWAY_KEYSTORE": "database",
        "GATEWAY_KEYS_PASSPHRASE": PASSPHRASE,
        "GATEWAY_JWKS_MAX_AGE": "300",
    }
    settings = settings_from(env)
    asyncio.run(migrate_store(settings))
    # Made an hour ago: its next key is old enough for one rotation, not for two.
    ensure_keystore(settings, now=datetime.now(UTC) - timedelta(hours=1))
    before = read_manifest(settings)

    async def race() -> list[subprocess.CompletedProcess[str]]:
        # Hold the state row's lock while both start, so that both really wait on each other.
        holder = await asyncpg.connect(postgres_url)
        observer = await asyncpg.connect(postgres_url)
        try:
            transaction = holder.transaction()
            await transaction.start()
            await holder.execute(f"SELECT 1 FROM {schema}.keystore_state FOR UPDATE")
            hosts = [
                await asyncio.create_subprocess_exec(
                    *cli_command("keys", "rotate", "--json"),
                    cwd=tmp_path,
                    env=cli_environment(env),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                for _ in range(2)
            ]

            async def waiting() -> int:
                # Another connection: pg_stat_activity is a snapshot per transaction.
                count: int = await observer.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gateway'"
                    " AND wait_event_type = 'Lock' AND query LIKE '%keystore_state%'"
                )
                return count

            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while await waiting() < 2:
                assert loop.time() < deadline, "the two rotations never waited on the lock"
                assert all(host.returncode is None for host in hosts), "a rotation did not wait"
                await asyncio.sleep(0.05)
            await transaction.rollback()
        finally:
            await holder.close()
            await observer.close()
        results = []
        for host in hosts:
            async with asyncio.timeout(60):
                stdout, stderr = await host.communicate()
            results.append(
                subprocess.CompletedProcess(
                    [], host.returncode or 0, stdout.decode(), stderr.decode()
                )
            )
        return results

    results = asyncio.run(race())

    assert sorted(result.returncode for result in results) == [0, 1], results
    winner = next(result for result in results if result.returncode == 0)
    loser = next(result for result in results if result.returncode == 1)
    assert json.loads(winner.stdout)["current"] == before.next.kid
    assert "was created 0 s ago" in loser.stderr or "was created 1 s ago" in loser.stderr
    assert "rotate again in" in loser.stderr
    after = read_manifest(settings)
    assert after.current.kid == before.next.kid
    assert [key.kid for key in after.retiring] == [before.current.kid]  # one rotation, not two


def test_a_gateway_process_signs_and_verifies_with_no_keys_directory(
    db_env: dict[str, str], tmp_path: Path
) -> None:
    env = {key: value for key, value in db_env.items() if key != "GATEWAY_KEYS_DIR"}
    work = tmp_path / "replica"
    work.mkdir()
    cli_stdout(
        env,
        work,
        "users",
        "create",
        "ada@example.com",
        "--password-stdin",
        stdin="correct horse battery",
    )

    with run_gateway(env, cwd=work) as base:
        tokens = httpx.post(
            f"{base}/auth/login",
            json={"email": "ada@example.com", "password": "correct horse battery"},
        ).json()
        me = httpx.get(
            f"{base}/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
        )
        jwks = httpx.get(f"{base}/.well-known/jwks.json").json()

    assert me.status_code == 200, me.text
    kid = jwt.get_unverified_header(tokens["access_token"])["kid"]
    assert kid == read_manifest(settings_from(db_env)).current.kid
    assert kid in {jwk["kid"] for jwk in jwks["keys"]}
    assert not (work / "keys").exists()
    assert not (tmp_path / "keys").exists()


def test_gateway_serve_with_a_wrong_passphrase_is_refused_in_one_line(
    db_env: dict[str, str], db_settings: Settings, tmp_path: Path
) -> None:
    ensure_keystore(db_settings)

    result = run_cli(
        {**db_env, "GATEWAY_KEYS_PASSPHRASE": "a wrong but long passphrase"}, tmp_path, "serve"
    )

    assert result.returncode == 1
    assert "encrypted with another passphrase" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.postgres
async def test_a_holder_keeps_its_ring_while_the_store_cannot_be_read_and_logs_once(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    schema = "keystore_outage"
    env = {
        "GATEWAY_DATABASE_URL": postgres_url.replace("postgresql://", "postgresql+asyncpg://"),
        "GATEWAY_DATABASE_SCHEMA": schema,
        "GATEWAY_KEYSTORE": "database",
        "GATEWAY_KEYS_PASSPHRASE": PASSPHRASE,
    }
    settings = settings_from(env)
    await migrate_store(settings)
    await asyncio.to_thread(ensure_keystore, settings)
    admin = await asyncpg.connect(postgres_url)
    try:
        async with KeyRingHolder(settings) as holder:
            before = holder.ring
            await admin.execute(f"ALTER TABLE {schema}.keystore_state RENAME TO away")
            with caplog.at_level(logging.WARNING, logger="gateway.tokens.watcher"):
                results = [await holder.refresh() for _ in range(3)]
            await admin.execute(f"ALTER TABLE {schema}.away RENAME TO keystore_state")
            await asyncio.to_thread(rotate_keys, settings, force=True)
            # This refresh or the watcher's own (after the NOTIFY), whichever comes first.
            await holder.refresh()
            recovered = await wait_for_async(
                lambda: holder.ring is not before, PICKUP_DEADLINE_SECONDS
            )

        assert results == [False, False, False]
        warnings = [r for r in caplog.records if "keeping the previous" in r.getMessage()]
        assert len(warnings) == 1
        assert "the store cannot be read" in warnings[0].getMessage()
        assert recovered
        assert holder.ring is not before
        assert before.current_kid in holder.ring.kids
    finally:
        await admin.close()


class StallingProxy:
    """A TCP proxy to the store that can stop forwarding: its connections stay open and
    silent, as behind a broken network path, until it forwards again."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._forwarding = asyncio.Event()
        self._forwarding.set()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> StallingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    def stall(self) -> None:
        self._forwarding.clear()

    def resume(self) -> None:
        self._forwarding.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                await self._forwarding.wait()
                sink.write(data)
                await sink.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sink.close()


@pytest.mark.postgres
async def test_a_holder_on_a_stalled_store_keeps_serving_stops_and_recovers(
    postgres_url: str,
) -> None:
    schema = "keystore_stall"
    direct_env = {
        "GATEWAY_DATABASE_URL": postgres_url.replace("postgresql://", "postgresql+asyncpg://"),
        "GATEWAY_DATABASE_SCHEMA": schema,
        "GATEWAY_KEYSTORE": "database",
        "GATEWAY_KEYS_PASSPHRASE": PASSPHRASE,
    }
    direct = settings_from(direct_env)
    await migrate_store(direct)
    await asyncio.to_thread(ensure_keystore, direct)
    target = httpx.URL(postgres_url)
    async with StallingProxy(target.host, target.port or 5432) as proxy:
        proxied_url = postgres_url.replace(
            f"{target.host}:{target.port}", f"127.0.0.1:{proxy.port}"
        )
        assert proxied_url != postgres_url
        proxied = settings_from(
            {
                **direct_env,
                "GATEWAY_DATABASE_URL": proxied_url.replace(
                    "postgresql://", "postgresql+asyncpg://"
                ),
            }
        )
        holder = KeyRingHolder(proxied)
        await holder.start()
        try:
            before = holder.ring.current_kid
            proxy.stall()
            rotated = (await asyncio.to_thread(rotate_keys, direct, force=True)).current.kid
            # A reload on the stalled store gives up instead of hanging (the bound is a guard
            # against a hang, not a measured time).
            async with asyncio.timeout(HANG_GUARD_SECONDS):
                assert not await holder.refresh()
            assert holder.ring.current_kid == before

            proxy.resume()
            assert await wait_for_async(lambda: holder.ring.current_kid == rotated, 15.0)

            proxy.stall()
            await asyncio.to_thread(rotate_keys, direct, force=True)
        finally:
            async with asyncio.timeout(HANG_GUARD_SECONDS):
                await holder.stop()  # promptly, though its connections are stalled
        assert holder.ring.current_kid == rotated


@pytest.mark.postgres
async def test_an_unexpected_error_in_the_listen_loop_does_not_end_the_watch(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.tokens import _sources

    schema = "keystore_listen_error"
    settings = settings_from(
        {
            "GATEWAY_DATABASE_URL": postgres_url.replace("postgresql://", "postgresql+asyncpg://"),
            "GATEWAY_DATABASE_SCHEMA": schema,
            "GATEWAY_KEYSTORE": "database",
            "GATEWAY_KEYS_PASSPHRASE": PASSPHRASE,
        }
    )
    await migrate_store(settings)
    await asyncio.to_thread(ensure_keystore, settings)
    real_connect = asyncpg.connect
    calls: list[int] = []

    async def connect_failing_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("not an error the loop names")
        return await real_connect(*args, **kwargs)

    # The LISTEN loop's own asyncpg only (the store's engine connects through the real one).
    fake = types.SimpleNamespace(**{**vars(asyncpg), "connect": connect_failing_once})
    monkeypatch.setattr(_sources, "asyncpg", fake)
    async with KeyRingHolder(settings) as holder:
        assert await wait_for_async(lambda: len(calls) >= 1, PICKUP_DEADLINE_SECONDS)
        rotated = (await asyncio.to_thread(rotate_keys, settings, force=True)).current.kid

        assert await wait_for_async(lambda: holder.ring.current_kid == rotated, 15.0)
        assert await wait_for_async(lambda: len(calls) >= 2, 15.0)  # and it LISTENs again
