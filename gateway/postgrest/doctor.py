"""``gateway doctor``: do the store, the keys, the database roles and PostgREST agree?"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg

from gateway.errors import GatewayError
from gateway.postgrest.bootstrap import HELPERS, PRE_REQUEST, BootstrapPlan
from gateway.postgrest.database import connect, postgrest_database_url
from gateway.postgrest.jwks_database import (
    JWT_SECRET_SETTING,
    is_publisher_installed,
    key_ids,
    role_setting,
    same_jwks,
)
from gateway.settings import Settings
from gateway.store import open_store
from gateway.tokens import KeyRing, keys_directory, load_keyring, sign_access_token
from gateway.upstream import UpstreamAddress, UpstreamClient, UpstreamError

MAX_CLOCK_SKEW = 30.0  # seconds; PostgREST and the gateway both allow 30 s on exp and iat
PROBE_TIMEOUT = 5.0
_BOOTSTRAP_FIX = "Run `gateway postgrest bootstrap`."
_URL_FIX = "Start PostgREST, or set GATEWAY_UPSTREAM_URL to where it listens."
_JWKS_FIX = "Run `gateway postgrest bootstrap --jwks-in-database`: it publishes the live JWKS."
_CHECK_SESSION_FIX = "Run `gateway postgrest bootstrap --check-sessions`."
_CLOCK_FIX = "Synchronise both clocks with NTP: beyond 30 s tokens look expired or not yet valid."


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None


async def run_doctor(
    settings: Settings, *, database_url: str | None = None, upstream_url: str | None = None
) -> list[Check]:
    """Every check, in order; a check whose prerequisite failed says so instead of running."""
    checks = [await _check_store(settings)]
    ring, keystore_checks = _check_keystore(settings)
    checks += keystore_checks
    checks += await _check_database(settings, ring, database_url)
    checks += await _check_postgrest(settings, ring, upstream_url or settings.upstream_url)
    return checks


async def _check_store(settings: Settings) -> Check:
    try:
        engine = await open_store(settings, migrate_embedded=False)
    except GatewayError as exc:
        return Check("store", False, exc.message, "Start the database, then `gateway db upgrade`.")
    await engine.dispose()
    return Check("store", True, "reachable and migrated")


def _check_keystore(settings: Settings) -> tuple[KeyRing | None, list[Check]]:
    try:
        ring = load_keyring(settings)
    except GatewayError as exc:
        return None, [Check("keystore", False, exc.message, "Run `gateway keys init`.")]
    checks = [Check("keystore", True, f"signing with {ring.current_alg} key {ring.current_kid}")]
    jwks_file = keys_directory(settings) / "jwks.json"
    try:
        on_disk = json.loads(Path(jwks_file).read_bytes())
    except (OSError, ValueError):
        on_disk = None
    if on_disk != ring.jwks:
        checks.append(
            Check(
                "jwks file",
                False,
                f"{jwks_file} does not hold the keystore's public keys (stale or missing), so "
                "PostgREST would refuse tokens of keys it does not list",
                "Run `gateway keys export-jwks`, then `gateway postgrest reload config`.",
            )
        )
    else:
        checks.append(Check("jwks file", True, f"{jwks_file} matches the keystore"))
    return ring, checks


async def _check_database(
    settings: Settings, ring: KeyRing | None, database_url: str | None
) -> list[Check]:
    plan = BootstrapPlan.from_settings(settings)
    try:
        url = postgrest_database_url(settings, database_url)
        async with connect(url) as db:
            return [
                *await _database_checks(db, plan),
                await _jwks_in_database_check(db, plan, ring),
                await _check_session_check(db, plan),
            ]
    except GatewayError as exc:
        return [
            Check(
                "database",
                False,
                exc.message,
                "Pass --database-url (PostgREST's database) or set "
                "GATEWAY_POSTGREST_NOTIFY_URL, and check that it is up.",
            )
        ]


async def _database_checks(db: asyncpg.Connection, plan: BootstrapPlan) -> list[Check]:
    checks = [Check("database", True, "reachable")]
    existing = {
        row["rolname"]: row
        for row in await db.fetch(
            "SELECT rolname, rolcanlogin, rolinherit FROM pg_roles WHERE rolname = ANY($1)",
            [plan.authenticator_role, *plan.switchable_roles],
        )
    }
    authenticator = existing.get(plan.authenticator_role)
    checks.append(_authenticator_check(plan, authenticator))
    for role in plan.switchable_roles:
        checks.append(
            await _switchable_role_check(
                db,
                plan,
                role,
                exists=role in existing,
                authenticator_exists=authenticator is not None,
            )
        )
    checks.append(await _helpers_check(db))
    checks.append(await _clock_check(db))
    return checks


def _authenticator_check(plan: BootstrapPlan, authenticator: asyncpg.Record | None) -> Check:
    if authenticator is None:
        return Check(
            "authenticator role",
            False,
            f"role {plan.authenticator_role!r} does not exist",
            _BOOTSTRAP_FIX,
        )
    if not authenticator["rolcanlogin"] or authenticator["rolinherit"]:
        return Check(
            "authenticator role",
            False,
            f"role {plan.authenticator_role!r} must be LOGIN NOINHERIT, so that it holds no "
            "privilege of its own beyond switching roles",
            f'ALTER ROLE "{plan.authenticator_role}" LOGIN NOINHERIT;',
        )
    return Check("authenticator role", True, f"{plan.authenticator_role!r} is LOGIN NOINHERIT")


async def _switchable_role_check(
    db: asyncpg.Connection,
    plan: BootstrapPlan,
    role: str,
    *,
    exists: bool,
    authenticator_exists: bool,
) -> Check:
    kind = "anonymous role" if role == plan.anon_role else "role"
    if not exists:
        return Check(
            f"{kind} {role}",
            False,
            f"role {role!r} does not exist: PostgREST cannot switch to it and answers "
            "such requests with an error",
            _BOOTSTRAP_FIX,
        )
    granted = authenticator_exists and await db.fetchval(
        "SELECT pg_has_role($1, $2, 'MEMBER')", plan.authenticator_role, role
    )
    if not granted:
        return Check(
            f"{kind} {role}",
            False,
            f"role {role!r} is not granted to {plan.authenticator_role!r}: PostgREST gets "
            "'permission denied to set role'",
            f'GRANT "{role}" TO "{plan.authenticator_role}";',
        )
    return Check(f"{kind} {role}", True, f"exists and is granted to {plan.authenticator_role!r}")


async def _helpers_check(db: asyncpg.Connection) -> Check:
    missing = [
        helper
        for helper in HELPERS
        if await db.fetchval("SELECT to_regprocedure($1)", helper) is None
    ]
    if missing:
        return Check("auth helpers", False, f"missing: {', '.join(missing)}", _BOOTSTRAP_FIX)
    return Check("auth helpers", True, "all five exist")


async def _jwks_in_database_check(
    db: asyncpg.Connection, plan: BootstrapPlan, ring: KeyRing | None
) -> Check:
    """With ``--jwks-in-database``: does the JWKS stored for PostgREST equal the live one?"""
    name = "jwks in database"
    if not await is_publisher_installed(db):
        return Check(name, True, "not set up: PostgREST reads its jwt-secret from its own config")
    if ring is None:
        return Check(name, False, "no keystore to compare with", "Run `gateway keys init`.")
    published = await role_setting(db, plan.authenticator_role, JWT_SECRET_SETTING)
    if published is None:
        return Check(
            name,
            False,
            f"auth.publish_jwks is installed but {plan.authenticator_role!r} has no "
            f"{JWT_SECRET_SETTING}, so PostgREST has no key to verify with",
            _JWKS_FIX,
        )
    if same_jwks(published, ring.jwks):
        return Check(
            name, True, f"{plan.authenticator_role!r}'s {JWT_SECRET_SETTING} matches the keystore"
        )
    live = [str(jwk.get("kid")) for jwk in ring.jwks["keys"]]
    stored = key_ids(published)
    missing = [kid for kid in live if kid not in stored]
    extra = [kid for kid in stored if kid not in live]
    differences = [
        *([f"missing keys {', '.join(missing)}"] if missing else []),
        *([f"keys no longer in the keystore {', '.join(extra)}"] if extra else []),
    ] or ["the same key ids with different members"]
    return Check(
        name,
        False,
        f"{plan.authenticator_role!r}'s {JWT_SECRET_SETTING} differs from the keystore's JWKS "
        f"({'; '.join(differences)}): PostgREST refuses tokens of keys it does not hold",
        _JWKS_FIX,
    )


async def _check_session_check(db: asyncpg.Connection, plan: BootstrapPlan) -> Check:
    """Is ``auth.check_session()`` installed, and PostgREST's db-pre-request?"""
    name = "check_session"
    installed = await db.fetchval("SELECT to_regprocedure('auth.check_session()') IS NOT NULL")
    stored = await role_setting(db, plan.authenticator_role, "pgrst.db_pre_request")
    configured = None if stored is None else stored.decode()
    if not installed and configured is None:
        return Check(
            name, True, "not installed: PostgREST trusts a token's signature until it expires"
        )
    if not installed:
        return Check(
            name,
            False,
            f"{plan.authenticator_role!r}'s pgrst.db_pre_request is {configured!r} but "
            "auth.check_session() does not exist",
            _CHECK_SESSION_FIX,
        )
    if configured != PRE_REQUEST:
        now = "unset" if configured is None else repr(configured)
        return Check(
            name,
            False,
            f"auth.check_session() is installed but {plan.authenticator_role!r}'s "
            f"pgrst.db_pre_request is {now}, so PostgREST does not run it",
            _CHECK_SESSION_FIX,
        )
    return Check(name, True, "auth.check_session() is installed and PostgREST's db-pre-request")


async def _clock_check(db: asyncpg.Connection) -> Check:
    database_epoch = float(await db.fetchval("SELECT extract(epoch FROM clock_timestamp())"))
    skew = abs(database_epoch - time.time())
    return Check(
        "clock skew",
        skew <= MAX_CLOCK_SKEW,
        f"the database's clock is {skew:.1f} s from the gateway's",
        None if skew <= MAX_CLOCK_SKEW else _CLOCK_FIX,
    )


async def _check_postgrest(settings: Settings, ring: KeyRing | None, upstream: str) -> list[Check]:
    try:
        address = UpstreamAddress.parse(upstream)
    except ValueError as exc:
        return [Check("postgrest", False, f"{upstream} is not an upstream URL ({exc})", _URL_FIX)]
    # The client the mount uses: a Unix socket upstream is probed as the proxy reaches it.
    http = UpstreamClient(
        address, pool_size=1, connect_timeout=PROBE_TIMEOUT, read_timeout=PROBE_TIMEOUT
    )
    host = (b"host", address.host_header)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            async with http.request(b"GET", address.target(b"/"), [host]) as answer:
                await answer.read()
        reachable = Check("postgrest", True, f"{address} answers")
        if ring is None:
            return [
                reachable,
                Check(
                    "probe token",
                    False,
                    "no keystore to sign a probe with",
                    "Run `gateway keys init`.",
                ),
            ]
        token = probe_token(settings, ring)
        bearer = (b"authorization", f"Bearer {token}".encode())
        async with asyncio.timeout(PROBE_TIMEOUT):
            async with http.request(b"GET", address.target(b"/"), [host, bearer]) as answer:
                status, body = answer.status, (await answer.read()).decode(errors="replace")
    except (UpstreamError, TimeoutError) as exc:
        return [
            Check(
                "postgrest",
                False,
                f"{address} does not answer ({exc or type(exc).__name__})",
                _URL_FIX,
            )
        ]
    finally:
        await http.close()
    if status < 400:
        return [
            reachable,
            Check(
                "probe token", True, f"PostgREST accepted a token signed by key {ring.current_kid}"
            ),
        ]
    return [reachable, Check("probe token", False, *_diagnose(status, body, ring, settings))]


#: The probe's ``token_type``: the gateway's verifier accepts only ``"access_token"``.
PROBE_TOKEN_TYPE = "doctor_probe"  # noqa: S105 - a claim value, not a secret
PROBE_LIFETIME = 60  # seconds


def probe_token(settings: Settings, ring: KeyRing) -> str:
    """The token doctor shows PostgREST: signed by the current key, and nobody's access token.

    PostgREST needs a valid signature, ``exp``, ``aud`` when one is configured, and ``role``;
    it reads nothing else. The gateway's verifier refuses the probe three times over: its
    ``token_type`` is not ``access_token``, and it names no user (``sub``) and no session
    (``sid``); so a probe that leaks (a log, a hostile ``--upstream-url``) is worthless at /rest
    and /auth/me, and the SQL helpers (``auth.claims()`` needs ``sub``) see no user in it.
    """
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": settings.issuer,
        "iat": now,
        "exp": now + PROBE_LIFETIME,
        "role": settings.authenticated_role,
        "token_type": PROBE_TOKEN_TYPE,
    }
    if settings.audience:
        claims["aud"] = settings.audience
    return sign_access_token(ring, claims)


def _diagnose(status: int, body: str, ring: KeyRing, settings: Settings) -> tuple[str, str]:
    """Why PostgREST refused the probe, from its error body, and what to do about it."""
    try:
        error = json.loads(body)
        message = f"{error.get('code')}: {error.get('message')}"
    except (ValueError, AttributeError):
        message = body[:200]
    lowered = message.lower()
    if "signature" in lowered or "jwk" in lowered or "pgrst301" in lowered:
        return (
            f"PostgREST refused a token signed by the current key {ring.current_kid} "
            f"({status} {message}): its JWKS does not hold this key",
            "Point PostgREST's jwt-secret at @<keys dir>/jwks.json, run `gateway keys "
            "export-jwks` and `gateway postgrest reload config`.",
        )
    if "aud" in lowered:
        return (
            f"PostgREST refused the token's audience ({status} {message})",
            "Make PostgREST's jwt-aud equal GATEWAY_AUDIENCE (or unset both).",
        )
    if "does not exist" in lowered and "role" in lowered:
        return (
            f"PostgREST cannot switch to {settings.authenticated_role!r} ({message})",
            "Run `gateway postgrest bootstrap` on PostgREST's database.",
        )
    if "permission denied to set role" in lowered:
        return (
            f"PostgREST may not switch to {settings.authenticated_role!r} ({message})",
            f'GRANT "{settings.authenticated_role}" TO the role in PostgREST\'s db-uri.',
        )
    return (
        f"PostgREST answered the probe with {status} {message}",
        "Check PostgREST's log; its jwt-role-claim-key must be .role (the default).",
    )


def as_json(checks: list[Check]) -> dict[str, object]:
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}


def run(settings: Settings, **kwargs: str | None) -> list[Check]:
    return asyncio.run(run_doctor(settings, **kwargs))
