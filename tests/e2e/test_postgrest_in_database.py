"""The JWKS through the database and auth.check_session(), with the real PostgREST 12.

PostgREST here has no jwt-secret in its file: after ``gateway postgrest bootstrap
--jwks-in-database --check-sessions`` it verifies tokens with the JWKS stored as its
authenticator role's ``pgrst.jwt_secret`` and runs ``auth.check_session()`` before each request
(``pgrst.db_pre_request`` on the same role). The module's database is its own (``served``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.postgrest import JWKSRefused, publish_jwks, published_jwks
from gateway.postgrest.doctor import forged_hmac_token, probe_token
from gateway.postgrest.jwks_database import role_setting
from gateway.settings import Settings
from gateway.tokens import (
    load_keyring,
    load_keystore,
    render_jwks,
    rotate_keys,
    sign_access_token,
)
from tests.conftest import settings_from
from tests.e2e.conftest import Served, gateway, ok, sql, token_for
from tests.support.in_process import SyncGatewayClient
from tests.support.postgres import fresh_database
from tests.support.postgrest import PostgREST, run_postgrest
from tests.support.waiting import wait_for

RELOAD_DEADLINE = 10.0
DEFINERS = ("auth.publish_jwks(text)", "gateway_check.session_refusal(text,text)")


@pytest.fixture(scope="module")
def in_db(served: Served) -> Served:
    ok(gateway(served.env, "postgrest", "bootstrap", "--jwks-in-database", "--check-sessions"))
    return served


@pytest.fixture
def settings(in_db: Served) -> Settings:
    return settings_from(in_db.env)


@pytest.fixture
def postgrest(in_db: Served, postgrest_bin: Path) -> Iterator[PostgREST]:
    """PostgREST with no jwt-secret and no db-pre-request in its file: both come from the role."""
    with run_postgrest(
        db_uri=in_db.authenticator_url,
        jwt_secret=None,
        anon_role=in_db.anon,
        binary=postgrest_bin,
    ) as server:
        yield server


def get(postgrest: PostgREST, path: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{postgrest.url}{path}", headers=headers)


def unpublished_token(role: str) -> str:
    """A well-formed token whose key the gateway never had."""
    key = ec.generate_private_key(ec.SECP256R1())
    claims = {"role": role, "exp": int(time.time()) + 300, "sub": "1", "sid": "x"}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": secrets.token_hex(8)})


def live_jwks(settings: Settings) -> bytes:
    return render_jwks(load_keystore(settings).jwks())


def stored(served: Served) -> dict[str, Any]:
    value = asyncio.run(published_jwks(settings_from(served.env)))
    assert value is not None
    document: dict[str, Any] = json.loads(value)
    return document


def as_role(served: Served, role: str, statement: str, *args: Any) -> Any:
    """Run ``statement`` as PostgREST would for a request of ``role``."""

    async def run() -> Any:
        connection = await asyncpg.connect(served.authenticator_url, timeout=10)
        try:
            async with connection.transaction():
                await connection.execute(f'SET LOCAL ROLE "{role}"')
                return await connection.fetch(statement, *args)
        finally:
            await connection.close()

    return asyncio.run(run())


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


# --- the JWKS through the database ----------------------------------------------------------


def test_postgrest_without_jwt_secret_accepts_gateway_tokens_and_refuses_unknown_keys(
    in_db: Served, postgrest: PostgREST
) -> None:
    accepted = get(postgrest, "/projects?order=id", token_for(in_db, "ada@example.com"))
    refused = get(postgrest, "/projects", unpublished_token(in_db.authenticated))

    assert accepted.status_code == 200, postgrest.log_tail()
    assert [p["name"] for p in accepted.json()] == ["acme one", "acme two"]
    assert refused.status_code == 401
    assert refused.json()["code"] == "PGRST301"


def test_published_jwks_is_the_keystores_and_public_only(in_db: Served, settings: Settings) -> None:
    document = stored(in_db)

    assert document == json.loads(live_jwks(settings))
    assert all(not {"d", "p", "q", "k"} & set(jwk) for jwk in document["keys"])


def test_a_rotation_published_reaches_postgrest_and_the_retiring_key_still_works(
    in_db: Served, settings: Settings, postgrest: PostgREST
) -> None:
    before = token_for(in_db, "ada@example.com")
    # Twice: the first rotation's current key was already published as "next"; the second
    # makes current a key PostgREST has never seen.
    rotate_keys(settings, force=True)
    rotate_keys(settings, force=True)
    after = token_for(in_db, "ada@example.com")
    assert kid_of(after) != kid_of(before)
    assert get(postgrest, "/projects", after).status_code == 401  # not published yet

    assert asyncio.run(publish_jwks(settings, live_jwks(settings))) is True

    wait_for(
        lambda: get(postgrest, "/projects", after).status_code == 200,
        RELOAD_DEADLINE,
        "PostgREST accepting the new current key after publish_jwks",
    )
    assert get(postgrest, "/projects", before).status_code == 200  # the retiring key
    assert [k["kid"] for k in stored(in_db)["keys"]] == [
        k["kid"] for k in json.loads(live_jwks(settings))["keys"]
    ]


@pytest.mark.parametrize(
    ("member", "why"),
    [
        ({"d": "c2VjcmV0"}, "private member"),
        ({"p": "AQAB", "q": "AQAB"}, "private member"),
        ({"kty": "oct", "k": "c2VjcmV0"}, "private member"),
    ],
)
def test_publish_refuses_a_jwks_with_a_private_or_secret_member(
    in_db: Served, settings: Settings, member: dict[str, str], why: str
) -> None:
    before = stored(in_db)
    document = json.loads(live_jwks(settings))
    document["keys"][0].update(member)

    with pytest.raises(JWKSRefused, match=why):
        asyncio.run(publish_jwks(settings, json.dumps(document).encode()))

    assert stored(in_db) == before


@pytest.mark.parametrize("document", [b"not json", b"[]", b'{"keys": []}', b'{"keys": [1]}'])
def test_publish_refuses_what_is_not_a_jwk_set(
    in_db: Served, settings: Settings, document: bytes
) -> None:
    with pytest.raises(JWKSRefused):
        asyncio.run(publish_jwks(settings, document))


def test_the_api_roles_cannot_publish(in_db: Served) -> None:
    for role in (in_db.anon, in_db.authenticated):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            as_role(in_db, role, "SELECT auth.publish_jwks($1)", '{"keys": []}')


def test_publish_is_false_where_bootstrap_did_not_opt_in(in_db: Served, settings: Settings) -> None:
    admin_url = in_db.url.rsplit("/", 1)[0] + "/postgres"
    with fresh_database(admin_url, f"gw_plain_{secrets.token_hex(4)}") as plain:
        published = asyncio.run(publish_jwks(settings, live_jwks(settings), database_url=plain))

    assert published is False


# --- auth.check_session() -------------------------------------------------------------------


def test_a_live_session_passes(in_db: Served, postgrest: PostgREST) -> None:
    answer = get(postgrest, "/projects", token_for(in_db, "ada@example.com"))

    assert answer.status_code == 200, answer.text


def test_a_revoked_session_is_refused_with_the_gateways_code(
    in_db: Served, settings: Settings, postgrest: PostgREST
) -> None:
    token = token_for(in_db, "ada@example.com")
    assert get(postgrest, "/projects", token).status_code == 200
    with SyncGatewayClient(settings) as client:
        logout = client.post("/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert logout.status_code == 204, logout.text

    refused = get(postgrest, "/projects", token)

    assert refused.status_code == 401
    assert refused.json()["code"] == "session_revoked"
    assert refused.json()["message"] == "This session has ended; sign in again."
    assert refused.headers["www-authenticate"].startswith("Bearer")


def test_an_expired_session_is_refused(in_db: Served, postgrest: PostgREST) -> None:
    token = token_for(in_db, "ada@example.com")
    sid = jwt.decode(token, options={"verify_signature": False})["sid"]
    sql(
        in_db.url,
        "UPDATE gateway.sessions SET expires_at = now() - interval '1 second' WHERE id = $1",
        sid,
    )

    refused = get(postgrest, "/projects", token)

    assert refused.status_code == 401
    assert refused.json()["code"] == "session_expired"


def test_a_suspended_user_is_refused(in_db: Served, postgrest: PostgREST) -> None:
    token = token_for(in_db, "carl@example.com")
    assert get(postgrest, "/projects", token).status_code == 200
    ok(gateway(in_db.env, "users", "suspend", "carl@example.com"))
    try:
        refused = get(postgrest, "/projects", token)
    finally:
        ok(gateway(in_db.env, "users", "activate", "carl@example.com"))

    assert refused.status_code == 401
    assert refused.json() == {
        "code": "user_suspended",
        "message": "This account is suspended.",
        "details": None,
        "hint": None,
    }


def test_a_token_naming_someone_elses_session_is_refused(
    in_db: Served, settings: Settings, postgrest: PostgREST
) -> None:
    ada = jwt.decode(token_for(in_db, "ada@example.com"), options={"verify_signature": False})
    eve = jwt.decode(token_for(in_db, "eve@example.com"), options={"verify_signature": False})
    ring = load_keyring(settings)
    forged = sign_access_token(ring, {**ada, "sid": eve["sid"]})

    refused = get(postgrest, "/projects", forged)

    assert refused.status_code == 401
    assert refused.json()["code"] == "session_revoked"


def test_anonymous_requests_the_anon_key_and_doctors_probe_pass(
    in_db: Served, settings: Settings, postgrest: PostgREST
) -> None:
    anon_key = ok(gateway(in_db.env, "keys", "anon-key")).strip()
    probe = probe_token(settings, load_keyring(settings))

    anonymous = get(postgrest, "/rpc/echo_request")
    with_anon_key = get(postgrest, "/rpc/echo_request", anon_key)
    with_probe = get(postgrest, "/rpc/echo_request", probe)

    assert anonymous.status_code == 200, anonymous.text
    assert with_anon_key.status_code == 200, with_anon_key.text
    assert with_probe.status_code == 200, with_probe.text
    assert with_probe.json()["claims"]["role"] == in_db.anon


def signed(settings: Settings, **claims: object) -> str:
    now = int(time.time())
    base: dict[str, object] = {"iss": settings.issuer, "iat": now, "exp": now + 300}
    return sign_access_token(load_keyring(settings), {**base, **claims})


def test_a_gateway_signed_token_without_a_live_session_is_refused_whatever_its_role(
    in_db: Served, settings: Settings, postgrest: PostgREST
) -> None:
    live = jwt.decode(token_for(in_db, "ada@example.com"), options={"verify_signature": False})
    member = in_db.authenticated
    tokens = {
        "signed-in role, no sid": signed(settings, role=member, sub="1"),
        "signed-in role, nothing": signed(settings, role=member),
        "anon role with a sub": signed(settings, role=in_db.anon, sub=live["sub"]),
        "a live sid without token_type": signed(
            settings, role=member, sub=live["sub"], sid=live["sid"]
        ),
        "a live sid of another token_type": signed(
            settings, role=member, sub=live["sub"], sid=live["sid"], token_type="anon_key"
        ),
    }

    answers = {why: get(postgrest, "/rpc/echo_request", token) for why, token in tokens.items()}

    for why, answer in answers.items():
        assert answer.status_code == 401, (why, answer.text)
        assert answer.json()["code"] == "session_required", why
    assert get(postgrest, "/rpc/echo_request", signed(settings, **live)).status_code == 200


def test_a_missing_sessions_table_is_a_generic_503(in_db: Served, postgrest: PostgREST) -> None:
    token = token_for(in_db, "ada@example.com")
    sql(in_db.url, "ALTER TABLE gateway.sessions RENAME TO sessions_elsewhere")
    try:
        refused = get(postgrest, "/projects", token)
    finally:
        sql(in_db.url, "ALTER TABLE gateway.sessions_elsewhere RENAME TO sessions")

    assert refused.status_code == 503, refused.text
    assert refused.json() == {
        "code": "session_check_unavailable",
        "message": "Sessions cannot be checked now; try again later.",
        "details": None,
        "hint": None,
    }
    assert "sessions" not in refused.text.replace("Sessions cannot", "")


def test_the_definers_have_a_fixed_search_path_and_no_public_execute(in_db: Served) -> None:
    rows = sql(
        in_db.url,
        "SELECT p.oid::regprocedure::text AS name, p.prosecdef, p.proconfig, "
        "EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a "
        "        WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') AS public_execute "
        "FROM pg_proc AS p WHERE p.oid = ANY($1::regprocedure[])",
        [*DEFINERS, "auth.check_session()"],
    )
    found = {row["name"]: row for row in rows}

    assert set(found) == {*DEFINERS, "auth.check_session()"}
    for name, row in found.items():
        assert row["proconfig"] == ["search_path=pg_catalog, pg_temp"], name
        assert row["public_execute"] is False, name
        assert row["prosecdef"] is (name in DEFINERS), name


def test_the_api_roles_still_cannot_read_the_gateways_tables(in_db: Served) -> None:
    for role in (in_db.anon, in_db.authenticated):
        for table in ("gateway.sessions", "gateway.users"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                as_role(in_db, role, f"SELECT count(*) FROM {table}")


def test_the_session_lookup_is_a_primary_key_probe(in_db: Served) -> None:
    source = sql(
        in_db.url,
        "SELECT prosrc FROM pg_proc "
        "WHERE oid = 'gateway_check.session_refusal(text,text)'::regprocedure",
    )[0]["prosrc"]

    async def plan() -> Any:
        connection = await asyncpg.connect(in_db.url, timeout=10)
        try:
            async with connection.transaction():
                # A handful of rows fit in one page, which the planner rightly reads whole;
                # without that option the plan shows what a real table of sessions gets.
                await connection.execute("SET LOCAL enable_seqscan = off")
                await connection.execute(f"PREPARE probe(text, text) AS {source}")
                return json.loads(
                    await connection.fetchval("EXPLAIN (FORMAT JSON) EXECUTE probe('x', '1')")
                )
        finally:
            await connection.close()

    nodes: list[dict[str, Any]] = []
    pending = [asyncio.run(plan())[0]["Plan"]]
    while pending:
        node = pending.pop()
        nodes.append(node)
        pending += node.get("Plans", [])
    scans = {(n["Node Type"], n.get("Index Name")) for n in nodes if "Relation Name" in n}

    assert scans == {("Index Scan", "pk_sessions"), ("Index Scan", "pk_users")}


# --- bootstrap and doctor -------------------------------------------------------------------


def role_settings(served: Served) -> list[str]:
    rows = sql(
        served.url,
        "SELECT unnest(setconfig) AS setting FROM pg_db_role_setting "
        "WHERE setrole = $1::regrole AND setdatabase = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())",
        served.authenticator,
    )
    return sorted(row["setting"].split("=", 1)[0] for row in rows)


def test_bootstrap_is_idempotent(in_db: Served) -> None:
    before = stored(in_db)

    again = gateway(in_db.env, "postgrest", "bootstrap", "--jwks-in-database", "--check-sessions")

    assert again.exit_code == 0, again.stderr
    assert stored(in_db) == before
    assert role_settings(in_db) == ["pgrst.db_pre_request", "pgrst.jwt_secret"]


def test_check_sessions_needs_the_gateways_tables(in_db: Served) -> None:
    admin_url = in_db.url.rsplit("/", 1)[0] + "/postgres"
    with fresh_database(admin_url, f"gw_bare_{secrets.token_hex(4)}") as bare:
        result = gateway(
            in_db.env, "postgrest", "bootstrap", "--check-sessions", "--database-url", bare
        )

    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "needs the gateway's tables" in result.stderr
    assert "Traceback" not in result.stderr


def doctor(served: Served, postgrest_url: str) -> tuple[int, dict[str, dict[str, Any]]]:
    result = gateway(
        served.env,
        "doctor",
        "--json",
        "--database-url",
        served.url,
        "--upstream-url",
        postgrest_url,
    )
    assert result.stdout, (result.stderr, result.exception)
    report = json.loads(result.stdout)
    return result.exit_code, {check["name"]: check for check in report["checks"]}


def test_doctor_passes_when_postgrest_loads_the_live_jwks(
    in_db: Served, postgrest: PostgREST
) -> None:
    code, checks = doctor(in_db, postgrest.url)

    assert {name for name, check in checks.items() if not check["ok"]} == set()
    assert code == 0
    assert "matches the keystore" in checks["jwks in database"]["detail"]
    assert "is installed and PostgREST's db-pre-request" in checks["check_session"]["detail"]


def test_doctor_lists_the_kids_postgrest_would_not_load(
    in_db: Served, settings: Settings, postgrest: PostgREST
) -> None:
    live = json.loads(live_jwks(settings))
    current = load_keyring(settings).current_kid
    partial = {"keys": [k for k in live["keys"] if k["kid"] != current]}
    assert asyncio.run(publish_jwks(settings, json.dumps(partial).encode())) is True
    try:
        code, checks = doctor(in_db, postgrest.url)
    finally:
        assert asyncio.run(publish_jwks(settings, live_jwks(settings))) is True

    assert code == 1
    check = checks["jwks in database"]
    assert check["ok"] is False
    assert f"missing keys {current}" in check["detail"]
    assert check["fix"] == (
        "Run `gateway postgrest bootstrap --jwks-in-database`: it publishes the live JWKS."
    )


def test_doctor_names_a_check_session_that_is_not_the_pre_request(
    in_db: Served, postgrest: PostgREST
) -> None:
    sql(
        in_db.url,
        f'ALTER ROLE "{in_db.authenticator}" IN DATABASE "{in_db.url.rsplit("/", 1)[1]}" '
        "RESET pgrst.db_pre_request",
    )
    try:
        code, checks = doctor(in_db, postgrest.url)
    finally:
        ok(gateway(in_db.env, "postgrest", "bootstrap", "--check-sessions"))

    assert code == 1
    assert checks["check_session"]["ok"] is False
    assert "pgrst.db_pre_request is unset" in checks["check_session"]["detail"]
    assert "--check-sessions" in checks["check_session"]["fix"]


def test_a_publisher_role_without_privileges_publishes_through_the_definer(
    in_db: Served, settings: Settings, postgrest: PostgREST
) -> None:
    """The gateway's role needs no right to ALTER ROLE: the definer does it, and only that."""
    publisher, password = f"pub_{in_db.anon}", secrets.token_hex(12)
    sql(in_db.url, f"CREATE ROLE \"{publisher}\" LOGIN PASSWORD '{password}'")
    as_publisher = in_db.url.replace(
        "postgresql://postgres@", f"postgresql://{publisher}:{password}@"
    )
    try:
        ok(
            gateway(
                in_db.env,
                "postgrest",
                "bootstrap",
                "--jwks-in-database",
                "--jwks-publisher-role",
                publisher,
            )
        )
        partial = {"keys": json.loads(live_jwks(settings))["keys"][1:]}
        published = asyncio.run(
            publish_jwks(settings, json.dumps(partial).encode(), database_url=as_publisher)
        )
        seen = asyncio.run(published_jwks(settings, database_url=as_publisher))
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            asyncio.run(_alter_role_as(as_publisher, in_db.authenticator))
    finally:
        assert asyncio.run(publish_jwks(settings, live_jwks(settings))) is True
        sql(in_db.url, f'DROP OWNED BY "{publisher}"')
        sql(in_db.url, f'DROP ROLE "{publisher}"')

    assert published is True
    assert seen is not None
    assert json.loads(seen) == partial


async def _alter_role_as(url: str, authenticator: str) -> None:
    connection = await asyncpg.connect(url, timeout=10)
    try:
        await connection.execute(f"ALTER ROLE \"{authenticator}\" SET pgrst.jwt_secret = 'x'")
    finally:
        await connection.close()


# --- what PostgREST would misread: refused before it is stored -------------------------------

SECRET = base64.urlsafe_b64encode(b"an attacker's shared secret 32by").rstrip(b"=").decode()


def attack_documents(settings: Settings) -> dict[str, dict[str, Any]]:
    live = json.loads(live_jwks(settings))["keys"]
    return {
        "a top-level oct JWK beside keys": {"keys": [{"kty": "RSA"}], "kty": "oct", "k": SECRET},
        "an unknown curve": {"keys": [*live, {"kty": "EC", "crv": "P-999", "x": "a", "y": "b"}]},
        "an alg of another type": {"keys": [{**live[0], "alg": "HS256"}]},
        "a use other than sig": {"keys": [{**live[0], "use": "enc"}]},
        "a member outside the profile": {"keys": [{**live[0], "x5u": "https://example.com"}]},
        "a short coordinate": {"keys": [{**live[0], "x": live[0]["x"][:-4]}]},
        "a non-canonical coordinate": {"keys": [{**live[0], "x": live[0]["x"] + "="}]},
        "a kid that is not a string": {"keys": [{**live[0], "kid": 7}]},
        "an RSA key without e": {"keys": [{"kty": "RSA", "n": "AQAB" * 100}]},
    }


def publish_in_sql(served: Served, document: dict[str, Any]) -> None:
    sql(served.url, "SELECT auth.publish_jwks($1)", json.dumps(document))


@pytest.mark.parametrize(
    "case",
    [
        "a top-level oct JWK beside keys",
        "an unknown curve",
        "an alg of another type",
        "a use other than sig",
        "a member outside the profile",
        "a short coordinate",
        "a non-canonical coordinate",
        "a kid that is not a string",
        "an RSA key without e",
    ],
)
def test_publish_jwks_itself_refuses_what_postgrest_would_misread(
    in_db: Served, settings: Settings, case: str
) -> None:
    """Straight to the SQL function, past the gateway's own check of the same rules."""
    before = stored(in_db)
    document = attack_documents(settings)[case]

    with pytest.raises(asyncpg.InvalidParameterValueError):
        publish_in_sql(in_db, document)
    with pytest.raises(JWKSRefused, match="may not be published"):
        asyncio.run(publish_jwks(settings, json.dumps(document).encode()))

    assert stored(in_db) == before


@pytest.mark.parametrize("case", ["a top-level oct JWK beside keys", "an unknown curve"])
def test_no_hmac_forgery_reaches_postgrest_after_an_attack_document(
    in_db: Served, settings: Settings, postgrest_bin: Path, case: str
) -> None:
    """A PostgREST started after the attempt reads whatever was stored: forgeries get 401."""
    try:
        try:
            publish_in_sql(in_db, attack_documents(settings)[case])
            refused = False
        except asyncpg.InvalidParameterValueError:
            refused = True
        text = asyncio.run(published_jwks(settings))
        assert text is not None
        secret = base64.urlsafe_b64decode(SECRET + "=" * (-len(SECRET) % 4))
        with run_postgrest(
            db_uri=in_db.authenticator_url,
            jwt_secret=None,
            anon_role=in_db.anon,
            binary=postgrest_bin,
        ) as fresh:
            answers = [
                get(fresh, "/rpc/echo_request", forged_hmac_token(settings, key)).status_code
                for key in (secret, text)
            ]
            genuine = get(fresh, "/projects", token_for(in_db, "ada@example.com")).status_code
    finally:
        assert asyncio.run(publish_jwks(settings, live_jwks(settings))) is True

    assert answers == [401, 401]  # what PostgREST accepts: first, so a regression shows there
    assert genuine == 200
    assert refused


def set_jwt_secret(served: Served, text: str) -> None:
    """Store ``text`` as the authenticator's pgrst.jwt_secret directly, past publish_jwks."""
    database = served.url.rsplit("/", 1)[1]
    quoted = "'" + text.replace("'", "''") + "'"
    sql(
        served.url,
        f'ALTER ROLE "{served.authenticator}" IN DATABASE "{database}" '
        f"SET pgrst.jwt_secret = {quoted}",
    )
    sql(served.url, "NOTIFY pgrst, 'reload config'")


def test_doctor_shouts_when_postgrest_takes_its_jwks_text_as_an_hmac_secret(
    in_db: Served, settings: Settings, postgrest: PostgREST
) -> None:
    """Why publish_jwks is strict: the document stored behind its back (as a superuser could)
    makes the real PostgREST accept HS256 tokens keyed with the public text; doctor says so."""
    live = json.loads(live_jwks(settings))["keys"]
    unreadable = json.dumps({"keys": [*live, {"kty": "EC", "crv": "P-999", "x": "a", "y": "b"}]})
    set_jwt_secret(in_db, unreadable)
    try:
        stored_text = asyncio.run(published_jwks(settings))
        assert stored_text is not None
        forged = forged_hmac_token(settings, stored_text)
        wait_for(
            lambda: get(postgrest, "/rpc/echo_request", forged).status_code == 200,
            RELOAD_DEADLINE,
            "PostgREST taking the unreadable JWKS text as an HMAC secret",
        )
        code, checks = doctor(in_db, postgrest.url)
    finally:
        assert asyncio.run(publish_jwks(settings, live_jwks(settings))) is True

    assert code == 1
    assert checks["hmac forgery"]["ok"] is False
    assert "ANYONE CAN FORGE TOKENS" in checks["hmac forgery"]["detail"]
    assert checks["probe token"]["ok"] is False  # its ES256 keys are gone as well


# --- who may publish ------------------------------------------------------------------------


def bootstrap_with_publisher(served: Served, publisher: str) -> Any:
    return gateway(
        served.env,
        "postgrest",
        "bootstrap",
        "--jwks-in-database",
        "--jwks-publisher-role",
        publisher,
    )


def publish_grantees(served: Served) -> set[str]:
    rows = sql(
        served.url,
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS g "
        "FROM pg_proc AS p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a "
        "WHERE p.oid = 'auth.publish_jwks(text)'::regprocedure AND a.privilege_type = 'EXECUTE' "
        "AND a.grantee <> p.proowner",
    )
    return {row["g"] for row in rows}


def drop_role(served: Served, role: str) -> None:
    sql(served.url, f'DROP OWNED BY "{role}"')
    sql(served.url, f'DROP ROLE "{role}"')


def assert_one_line_refusal(result: Any, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


@pytest.mark.parametrize(
    "which", ["public", "pg_monitor", "anon", "authenticated", "authenticator"]
)
def test_the_publisher_is_never_public_a_pg_role_or_an_api_role(in_db: Served, which: str) -> None:
    publisher = {
        "anon": in_db.anon,
        "authenticated": in_db.authenticated,
        "authenticator": in_db.authenticator,
    }.get(which, which)

    result = bootstrap_with_publisher(in_db, publisher)

    assert_one_line_refusal(result, "may not be PUBLIC, a pg_* role")
    assert publish_grantees(in_db) == set()


def test_the_default_publisher_from_the_gateways_url_is_checked_too(in_db: Served) -> None:
    as_anon = in_db.url.replace("postgresql://postgres@", f"postgresql://{in_db.anon}@")
    env = {**in_db.env, "GATEWAY_POSTGREST_NOTIFY_URL": as_anon}

    result = gateway(env, "postgrest", "bootstrap", "--jwks-in-database")

    assert_one_line_refusal(result, in_db.anon, "may not be PUBLIC")


@pytest.mark.parametrize("direction", ["member of anon", "anon is a member of it"])
def test_a_publisher_tied_to_an_api_role_is_refused_by_the_database(
    in_db: Served, direction: str
) -> None:
    publisher = f"pub_tied_{secrets.token_hex(3)}"
    sql(in_db.url, f'CREATE ROLE "{publisher}" NOLOGIN')
    grant = (
        f'GRANT "{in_db.anon}" TO "{publisher}"'
        if direction == "member of anon"
        else f'GRANT "{publisher}" TO "{in_db.anon}"'
    )
    sql(in_db.url, grant)
    try:
        result = bootstrap_with_publisher(in_db, publisher)
        grantees = publish_grantees(in_db)
    finally:
        drop_role(in_db, publisher)

    assert_one_line_refusal(result, publisher, in_db.anon)
    assert publisher not in grantees


def test_a_new_publisher_takes_the_grant_from_the_old_one_and_doctor_lists_it(
    in_db: Served, postgrest: PostgREST
) -> None:
    first, second = (f"pub_{n}_{secrets.token_hex(3)}" for n in ("old", "new"))
    for role in (first, second):
        sql(in_db.url, f'CREATE ROLE "{role}" NOLOGIN')
    try:
        ok(bootstrap_with_publisher(in_db, first))
        sql(in_db.url, "GRANT EXECUTE ON FUNCTION auth.publish_jwks(text) TO PUBLIC")
        _, before = doctor(in_db, postgrest.url)
        ok(bootstrap_with_publisher(in_db, second))
        after_grantees = publish_grantees(in_db)
        _, after = doctor(in_db, postgrest.url)
        ok(gateway(in_db.env, "postgrest", "bootstrap", "--jwks-in-database"))
        by_owner = publish_grantees(in_db)
    finally:
        for role in (first, second):
            drop_role(in_db, role)

    assert before["publish_jwks grants"]["ok"] is False
    assert "PUBLIC" in before["publish_jwks grants"]["detail"]
    assert after_grantees == {second}
    assert after["publish_jwks grants"]["ok"] is True
    assert after["publish_jwks grants"]["detail"] == f"EXECUTE: owner postgres; granted to {second}"
    assert by_owner == set()  # the owner publishes itself: nobody else keeps a grant


# --- the pre-request and the schemas the API roles see --------------------------------------


def test_check_sessions_never_replaces_another_pre_request(in_db: Served) -> None:
    database = in_db.url.rsplit("/", 1)[1]
    alter = f'ALTER ROLE "{in_db.authenticator}" IN DATABASE "{database}" '
    sql(in_db.url, alter + "SET pgrst.db_pre_request = 'public.my_check'")
    try:
        result = gateway(in_db.env, "postgrest", "bootstrap", "--check-sessions")
        kept = asyncio.run(_pre_request(in_db))
    finally:
        sql(in_db.url, alter + "SET pgrst.db_pre_request = 'auth.check_session'")

    assert_one_line_refusal(result, "public.my_check", "PERFORM auth.check_session();")
    assert kept == "public.my_check"


async def _pre_request(served: Served) -> str | None:
    connection = await asyncpg.connect(served.url, timeout=10)
    try:
        value = await role_setting(connection, served.authenticator, "pgrst.db_pre_request")
    finally:
        await connection.close()
    return None if value is None else value.decode()


def test_the_api_roles_see_only_the_check_schema_and_an_old_install_moves(in_db: Served) -> None:
    roles = [in_db.anon, in_db.authenticated]
    # An install of the previous version: session_refusal in the gateway's schema, with USAGE.
    sql(
        in_db.url,
        "CREATE FUNCTION gateway.session_refusal(sid text, sub text) RETURNS text "
        "LANGUAGE sql AS $$ SELECT NULL::text $$",
    )
    sql(in_db.url, f'GRANT USAGE ON SCHEMA gateway TO "{roles[0]}", "{roles[1]}"')

    ok(gateway(in_db.env, "postgrest", "bootstrap", "--check-sessions"))

    usage = sql(
        in_db.url,
        "SELECT r, has_schema_privilege(r, 'gateway', 'USAGE') AS gateway, "
        "has_schema_privilege(r, 'gateway_check', 'USAGE') AS checks FROM unnest($1::text[]) r",
        roles,
    )
    assert [(row["gateway"], row["checks"]) for row in usage] == [(False, True), (False, True)]
    assert (
        sql(in_db.url, "SELECT to_regprocedure('gateway.session_refusal(text,text)') AS f")[0]["f"]
        is None
    )
    functions = sql(
        in_db.url,
        "SELECT p.proname FROM pg_proc p WHERE p.pronamespace = 'gateway_check'::regnamespace",
    )
    assert [row["proname"] for row in functions] == ["session_refusal"]
