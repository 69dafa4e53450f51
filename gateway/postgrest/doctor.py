"""``gateway doctor``: do the store, the keys, the database roles and PostgREST agree?"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
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
    PUBLISH_FUNCTION,
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
    database_checks, stored_jwks = await _check_database(settings, ring, database_url)
    checks += database_checks
    # What PostgREST may read as its jwt-secret: each text must never work as an HMAC secret.
    jwks_texts = [text for text in (stored_jwks, _jwks_file_text(settings)) if text is not None]
    checks += await _check_postgrest(
        settings, ring, upstream_url or settings.upstream_url, list(dict.fromkeys(jwks_texts))
    )
    return checks


def _jwks_file_text(settings: Settings) -> bytes | None:
    try:
        return (keys_directory(settings) / "jwks.json").read_bytes()
    except OSError:
        return None


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
) -> tuple[list[Check], bytes | None]:
    """The database's checks, and the JWKS text stored for PostgREST there (None: none)."""
    plan = BootstrapPlan.from_settings(settings)
    try:
        url = postgrest_database_url(settings, database_url)
        async with connect(url) as db:
            checks = [
                *await _database_checks(db, plan),
                await _jwks_in_database_check(db, plan, ring),
                *await _publisher_acl_check(db, plan),
                await _check_session_check(db, plan),
            ]
            stored = await role_setting(db, plan.authenticator_role, JWT_SECRET_SETTING)
            return checks, stored
    except GatewayError as exc:
        return [
            Check(
                "database",
                False,
                exc.message,
                "Pass --database-url (PostgREST's database) or set "
                "GATEWAY_POSTGREST_NOTIFY_URL, and check that it is up.",
            )
        ], None


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


_PUBLISH_ACL = """
SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS grantee,
       a.grantee = p.proowner AS owner
FROM pg_proc AS p
CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
WHERE p.oid = to_regprocedure($1) AND a.privilege_type = 'EXECUTE'
ORDER BY 2 DESC, 1
"""
# Whether one of the API roles can become the role $2 (and so use its grants).
_CAN_BECOME = """
SELECT EXISTS (SELECT FROM unnest($1::text[]) AS r
               WHERE to_regrole(r) IS NOT NULL AND pg_has_role(r, $2, 'MEMBER'))
"""


async def _publisher_acl_check(db: asyncpg.Connection, plan: BootstrapPlan) -> list[Check]:
    """Who may call ``auth.publish_jwks``: its owner and one publisher, never an API role."""
    if not await is_publisher_installed(db):
        return []
    rows = await db.fetch(_PUBLISH_ACL, PUBLISH_FUNCTION)
    owner = [row["grantee"] for row in rows if row["owner"]]
    grantees = [row["grantee"] for row in rows if not row["owner"]]
    detail = (
        f"EXECUTE: owner {', '.join(owner) or '(none)'}; "
        f"granted to {', '.join(grantees) or 'nobody else'}"
    )
    api_roles = {plan.authenticator_role, *plan.switchable_roles}
    unsafe = [
        grantee
        for grantee in grantees
        if grantee == "PUBLIC"
        or grantee in api_roles
        or await db.fetchval(_CAN_BECOME, sorted(api_roles), grantee)
    ]
    if unsafe or len(grantees) > 1:
        why = (
            f"{', '.join(unsafe)} may publish, so PostgREST's requests (or anyone) could "
            "replace its keys"
            if unsafe
            else "more than one role may publish"
        )
        return [
            Check(
                "publish_jwks grants",
                False,
                f"{detail}: {why}",
                "Run `gateway postgrest bootstrap --jwks-in-database`: it revokes every grant "
                "but the publisher's.",
            )
        ]
    return [Check("publish_jwks grants", True, detail)]


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


async def _check_postgrest(
    settings: Settings, ring: KeyRing | None, upstream: str, jwks_texts: list[bytes]
) -> list[Check]:
    try:
        address = UpstreamAddress.parse(upstream)
    except ValueError as exc:
        return [Check("postgrest", False, f"{upstream} is not an upstream URL ({exc})", _URL_FIX)]
    # The client the mount uses: a Unix socket upstream is probed as the proxy reaches it.
    http = UpstreamClient(
        address, pool_size=1, connect_timeout=PROBE_TIMEOUT, read_timeout=PROBE_TIMEOUT
    )
    host = (b"host", address.host_header)

    async def get(token: str | None) -> tuple[int, str]:
        headers = (
            [host] if token is None else [host, (b"authorization", f"Bearer {token}".encode())]
        )
        async with asyncio.timeout(PROBE_TIMEOUT):
            async with http.request(b"GET", address.target(b"/"), headers) as answer:
                return answer.status, (await answer.read()).decode(errors="replace")

    try:
        await get(None)
        reachable = Check("postgrest", True, f"{address} answers")
        forged = [await get(forged_hmac_token(settings, text)) for text in jwks_texts]
        if ring is None:
            probe = Check(
                "probe token", False, "no keystore to sign a probe with", "Run `gateway keys init`."
            )
        else:
            status, body = await get(probe_token(settings, ring))
            probe = (
                Check(
                    "probe token",
                    True,
                    f"PostgREST accepted a token signed by key {ring.current_kid}",
                )
                if status < 400
                else Check("probe token", False, *_diagnose(status, body, ring, settings))
            )
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
    return [reachable, probe, *([_forgery_check(forged)] if jwks_texts else [])]


def _forgery_check(answers: list[tuple[int, str]]) -> Check:
    accepted = [status for status, _ in answers if status < 400]
    if accepted:
        return Check(
            "hmac forgery",
            False,
            "PostgREST ACCEPTED an HS256 token keyed with its own public JWKS text: it could "
            "not read the JWKS as keys and uses the text as a shared secret, so ANYONE CAN "
            "FORGE TOKENS",
            "Stop PostgREST now; publish a valid JWKS (`gateway keys export-jwks`, or `gateway "
            "postgrest bootstrap --jwks-in-database`) and reload it.",
        )
    return Check("hmac forgery", True, "PostgREST refuses HS256 tokens keyed with the JWKS text")


#: The probe's ``token_type``: the gateway's verifier accepts only ``"access_token"``.
PROBE_TOKEN_TYPE = "doctor_probe"  # noqa: S105 - a claim value, not a secret
PROBE_LIFETIME = 60  # seconds


def _probe_claims(settings: Settings) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": settings.issuer,
        "iat": now,
        "exp": now + PROBE_LIFETIME,
        "role": settings.anon_role,
        "token_type": PROBE_TOKEN_TYPE,
    }
    if settings.audience:
        claims["aud"] = settings.audience
    return claims


def probe_token(settings: Settings, ring: KeyRing) -> str:
    """The token doctor shows PostgREST: signed by the current key, and worth nothing.

    PostgREST needs a valid signature, ``exp``, ``aud`` when one is configured, and ``role``.
    The probe's role is the anonymous one, so even at PostgREST directly it can do no more than
    a request without a token; the gateway's verifier refuses it as a bearer (its
    ``token_type`` is not ``access_token``, and it names no user nor session). A probe that
    leaks (a log, a hostile ``--upstream-url``) is therefore worthless.
    """
    return sign_access_token(ring, _probe_claims(settings))


def forged_hmac_token(settings: Settings, jwks_text: bytes) -> str:
    """A probe signed HS256 with the JWKS text as the secret: what an attacker would try.

    PostgREST falls back to using its jwt-secret as an HMAC secret when it cannot read it as a
    JWK Set; this token shows whether it did. Anonymous role, so acceptance grants nothing.
    """

    # By hand: PyJWT rightly refuses a JWK-looking text as an HMAC key, which is the point here.
    def part(value: dict[str, object]) -> bytes:
        text = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(text).rstrip(b"=")

    signing_input = part({"alg": "HS256", "typ": "JWT"}) + b"." + part(_probe_claims(settings))
    mac = hmac.new(jwks_text, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()


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
            f"PostgREST cannot switch to {settings.anon_role!r} ({message})",
            "Run `gateway postgrest bootstrap` on PostgREST's database.",
        )
    if "permission denied to set role" in lowered:
        return (
            f"PostgREST may not switch to {settings.anon_role!r} ({message})",
            f'GRANT "{settings.anon_role}" TO the role in PostgREST\'s db-uri.',
        )
    return (
        f"PostgREST answered the probe with {status} {message}",
        "Check PostgREST's log; its jwt-role-claim-key must be .role (the default).",
    )


def as_json(checks: list[Check]) -> dict[str, object]:
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}


def run(settings: Settings, **kwargs: str | None) -> list[Check]:
    return asyncio.run(run_doctor(settings, **kwargs))
