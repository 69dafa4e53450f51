"""``gateway keys``: the signing keys: list, rotate, prune, export the JWKS."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import click

from gateway.cli._base import cli, emit, json_option, settings
from gateway.errors import GatewayError
from gateway.postgrest import notify_postgrest, publish_jwks
from gateway.settings import Settings
from gateway.tokens import (
    JWKS_NAME,
    KeyRecord,
    ensure_keystore,
    export_jwks,
    format_time,
    in_database,
    keys_directory,
    load_keyring,
    load_keystore,
    migrate_to_database,
    prune_keys,
    read_manifest,
    render_jwks,
    rotate_keys,
    sign_anon_key,
)


@cli.group()
def keys() -> None:
    """Signing keys: GATEWAY_KEYS_DIR holds them (or the store: GATEWAY_KEYSTORE=database)."""


@keys.command("init")
@json_option
def init(as_json: bool) -> None:
    """Create the keystore (a current and a next key) unless it exists."""
    config = settings()
    created = ensure_keystore(config)
    manifest = read_manifest(config)
    notified = after_key_change(config) if created else False
    where = "the store" if in_database(config) else str(keys_directory(config))
    emit(
        {
            "created": created,
            "keystore": config.keystore,
            "keys_dir": None if in_database(config) else where,
            "current": manifest.current.kid,
            "next": manifest.next.kid,
            "notified": notified,
        },
        as_json=as_json,
        text=(
            f"created a keystore in {where}: current key {manifest.current.kid}"
            if created
            else f"a keystore already exists in {where}; left unchanged"
        ),
    )


@keys.command("list")
@json_option
def list_(as_json: bool) -> None:
    """List the keys: kid, algorithm, state (current, next, retiring) and times."""
    records = read_manifest(settings()).keys
    lines = [
        f"{record.kid}  {record.alg:<5}  {record.state:<8}"
        f"  created {format_time(record.created_at)}"
        + "".join(
            f"  {label} {format_time(moment)}"
            for label, moment in (
                ("activated", record.activated_at),
                ("retired", record.retired_at),
            )
            if moment is not None
        )
        for record in records
    ]
    emit(
        {"keys": [record.to_json() for record in records]},
        as_json=as_json,
        text="\n".join(lines),
    )


@keys.command("rotate")
@click.option(
    "--force",
    is_flag=True,
    help="Rotate even if the next key is younger than twice GATEWAY_JWKS_MAX_AGE.",
)
@json_option
def rotate(force: bool, as_json: bool) -> None:
    """Promote next → current, current → retiring, create a new next key; tell PostgREST."""
    config = settings()
    manifest = rotate_keys(config, force=force)
    notified = after_key_change(config)
    emit(
        {
            "current": manifest.current.kid,
            "next": manifest.next.kid,
            "retiring": [record.kid for record in manifest.retiring],
            "notified": notified,
        },
        as_json=as_json,
        text=f"rotated: signing with {manifest.current.kid}, next key {manifest.next.kid}",
    )


@keys.command("prune")
@click.option("--force", is_flag=True, help="Drop every retiring key, even with live tokens.")
@json_option
def prune(force: bool, as_json: bool) -> None:
    """Drop retiring keys older than the longest access-token lifetime."""
    config = settings()
    dropped = prune_keys(config, force=force)
    notified = after_key_change(config) if dropped else False
    emit(
        {"pruned": [record.kid for record in dropped], "notified": notified},
        as_json=as_json,
        text=_pruned_text(dropped),
    )


@keys.command("anon-key")
@json_option
def anon_key(as_json: bool) -> None:
    """Print an anon key for supabase-js: the anon role, no user, no session (docs/supabase.md).

    Signed by the current key, it works until that key is pruned (a rotation makes it retiring,
    `gateway keys prune` drops it): print a new one after each rotation and ship it before
    pruning.
    """
    config = settings()
    ring = load_keyring(config)
    now = int(time.time())
    token = sign_anon_key(ring, config, now=now)
    emit(
        {"anon_key": token, "kid": ring.current_kid, "role": config.anon_role},
        as_json=as_json,
        text=token,
    )


@keys.command("export-jwks")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
def export(path: Path | None) -> None:
    """Write the public JWKS to PATH (default: jwks.json in GATEWAY_KEYS_DIR; '-': stdout).

    With GATEWAY_KEYSTORE=database there is no default: PATH is required.
    """
    config = settings()
    if path == Path("-"):
        sys.stdout.buffer.write(render_jwks(load_keystore(config).jwks()))
        return
    written = export_jwks(config, path)
    if not in_database(config) and written == keys_directory(config) / JWKS_NAME:
        after_key_change(config)  # the file PostgREST reads was rewritten
    click.echo(f"wrote the public JWKS to {written}")


@keys.command("migrate")
@click.option(
    "--to",
    "target",
    type=click.Choice(["database"]),
    required=True,
    help="Where the keys go: the store (then set GATEWAY_KEYSTORE=database).",
)
@json_option
def migrate(target: str, as_json: bool) -> None:
    """Copy the keystore of GATEWAY_KEYS_DIR into the store, in one transaction.

    Same kids, states and times, the private keys sealed under GATEWAY_KEYS_PASSPHRASE: tokens
    already issued keep verifying, and a replica switched to GATEWAY_KEYSTORE=database signs
    with the same current key. Running it again is harmless; a store that holds another
    keystore is refused. The keys directory is left as it was.
    """
    config = settings()
    directory = keys_directory(config)
    if not as_json:
        click.echo(f"gateway: copying the keystore of {directory} into the store", err=True)
    source, copied = migrate_to_database(config)
    notified = after_key_change(config) if copied else False
    manifest = source.manifest
    emit(
        {
            "copied": copied,
            "to": target,
            "keys": [record.to_json() for record in manifest.keys],
            "current": manifest.current.kid,
            "notified": notified,
        },
        as_json=as_json,
        text=(
            f"copied {len(manifest.keys)} keys into the store (current key "
            f"{manifest.current.kid}); now set GATEWAY_KEYSTORE=database on every replica"
            if copied
            else f"the store already holds these {len(manifest.keys)} keys (current key "
            f"{manifest.current.kid}); nothing to copy"
        ),
    )


def after_key_change(config: Settings) -> bool:
    """:func:`_after_key_change` with the keystore's JWKS as it now is."""
    return _after_key_change(config, render_jwks(load_keystore(config).jwks()))


def _after_key_change(config: Settings, jwks_document: bytes) -> bool:
    """What follows every key change (init or start-up that made keys, rotate, prune,
    migrate, a rewritten jwks.json), for both keystores: the one place to add a step, such as
    publishing ``jwks_document`` (the public JWKS after the change) where verifiers read it.

    Returns:
        True when PostgREST was told to reload.
    """
    if _publish(config, jwks_document):
        return True  # auth.publish_jwks sent NOTIFY pgrst in the same transaction
    return _tell_postgrest(config)


def _publish(config: Settings, jwks_document: bytes) -> bool:
    """Store the JWKS where PostgREST reads it, when `bootstrap --jwks-in-database` set that
    up; a failure is a warning, as for the notification below.

    The key that signs after a rotation was published as the next key by the change before,
    so a failed publication leaves tokens verifiable; `gateway doctor` shows the difference.
    """
    try:
        return asyncio.run(publish_jwks(config, jwks_document))
    except GatewayError as exc:
        click.echo(
            f"gateway: warning: the keys changed but PostgREST's copy of the JWKS was not "
            f"updated: {exc.message} (run `gateway postgrest bootstrap --jwks-in-database`)",
            err=True,
        )
        return False


def _tell_postgrest(config: Settings) -> bool:
    """NOTIFY PostgREST to reload its config (and so the JWKS); a failure is only a warning.

    The keystore change is already made and safe: PostgREST also picks up the file when it
    restarts, so a missed notification must not turn a done rotation into a failed command.
    """
    url = config.notify_url
    if url is None:
        return False
    try:
        asyncio.run(notify_postgrest(url, "reload config"))
    except GatewayError as exc:
        click.echo(
            f"gateway: warning: the keys changed but PostgREST was not told to reload: "
            f"{exc.message} (run `gateway postgrest reload config` or restart PostgREST)",
            err=True,
        )
        return False
    return True


def _pruned_text(dropped: tuple[KeyRecord, ...]) -> str:
    if not dropped:
        return "nothing to prune: every retiring key may still have live tokens"
    kids = ", ".join(record.kid for record in dropped)
    # Anon keys live for years inside built apps: the one thing that ends them is this.
    click.echo(
        f"gateway: warning: anon keys signed by {kids} are refused from now on "
        "(anon_key_retired); `gateway keys anon-key` prints a current one",
        err=True,
    )
    return "pruned " + kids
