"""The anon key at the PostgREST mounts: anonymous at most, and never a user's token downgraded.

In process (the real front door, mounts and tokens) with a recording upstream that shows what
reached "PostgREST".
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.settings import Settings
from gateway.tokens import ensure_keystore, load_keyring, sign_access_token, sign_anon_key
from tests.integration.conftest import Client, bearer, login, runtime_of
from tests.support.upstream import RecordingUpstream

pytestmark = pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)


@pytest.fixture
def upstream() -> Iterator[RecordingUpstream]:
    server = RecordingUpstream().start()
    yield server
    server.close()


@pytest.fixture
def auth_settings(
    migrated_store: Settings, tmp_path: Path, upstream: RecordingUpstream
) -> Settings:
    return migrated_store.model_copy(
        update={
            "keys_dir": f"{tmp_path}/keys",
            "cookie_secure": False,
            "auth_rate_limit": 100_000,
            "upstream_url": upstream.url,
        }
    )


def anon_key_of(client: Client) -> str:
    runtime = runtime_of(client)
    return sign_anon_key(runtime.keys.ring, runtime.settings, now=int(time.time()))


@pytest.mark.parametrize("prefix", ["/rest", "/rest/v1"])
async def test_the_anon_key_goes_up_as_no_token_and_apikey_never_goes_up(
    client: Client, upstream: RecordingUpstream, prefix: str
) -> None:
    key = anon_key_of(client)
    before = len(upstream.heads)

    response = await client.get(f"{prefix}/projects", headers={**bearer(key), "apikey": key})

    assert response.status_code == 200, response.text
    (head,) = upstream.heads[before:]
    assert head.split(b"\r\n", 1)[0] == b"GET /projects HTTP/1.1"
    assert b"\r\nauthorization:" not in head.lower()
    assert b"\r\napikey:" not in head.lower()


async def test_a_user_token_is_forwarded_intact_whatever_apikey_says(
    client: Client, upstream: RecordingUpstream
) -> None:
    token = (await login(client))["access_token"]
    before = len(upstream.heads)

    response = await client.get(
        "/rest/v1/projects", headers={**bearer(token), "apikey": anon_key_of(client)}
    )

    assert response.status_code == 200, response.text
    (head,) = upstream.heads[before:]
    assert f"authorization: Bearer {token}".lower().encode() in head.lower()
    assert b"\r\napikey:" not in head.lower()


async def test_an_anon_key_of_another_gateway_is_refused_and_goes_nowhere(
    client: Client, upstream: RecordingUpstream, tmp_path: Path
) -> None:
    other = runtime_of(client).settings.model_copy(update={"keys_dir": f"{tmp_path}/other"})
    ensure_keystore(other)
    forged = sign_anon_key(load_keyring(other), other, now=int(time.time()))
    before = len(upstream.heads)

    response = await client.get("/rest/v1/projects", headers=bearer(forged))

    assert response.status_code == 401
    # A well-formed header (an algorithm the gateway signs with, typ JWT) whose kid is not in
    # the ring: the gateway cannot tell it from a pruned key of its own, so it gets the answer a
    # pruned anon key gets (docs/supabase.md). It still goes nowhere.
    assert response.json()["code"] == "anon_key_retired"
    assert upstream.heads[before:] == []


async def test_an_anon_key_with_a_tampered_signature_is_refused_and_goes_nowhere(
    client: Client, upstream: RecordingUpstream
) -> None:
    key = anon_key_of(client)
    tampered = key[: key.rindex(".") + 1] + ("A" if key[-1] != "A" else "B") * 20
    before = len(upstream.heads)

    response = await client.get("/rest/v1/projects", headers=bearer(tampered))

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"
    assert upstream.heads[before:] == []


@pytest.mark.parametrize(
    "claims",
    [
        # A user's claims with the anon type: refused, never a user's request made anonymous.
        {"sub": "1", "sid": "s", "role": "anon", "token_type": "anon_key"},
        # The anon type with a role PostgREST would switch to.
        {"role": "authenticated", "token_type": "anon_key"},
    ],
)
async def test_an_anon_typed_token_with_more_than_the_anon_role_is_refused(
    client: Client, upstream: RecordingUpstream, claims: dict[str, str]
) -> None:
    runtime = runtime_of(client)
    now = int(time.time())
    token = sign_access_token(
        runtime.keys.ring, {"iss": runtime.settings.issuer, "iat": now, "exp": now + 60, **claims}
    )
    before = len(upstream.heads)

    response = await client.get("/rest/v1/projects", headers=bearer(token))

    assert response.status_code == 401
    assert json.loads(response.text)["code"] == "invalid_token"
    assert upstream.heads[before:] == []


def unsigned_token(header: dict[str, object], claims: dict[str, object]) -> str:
    """A JWS with any header, signed with nothing the gateway holds (garbage signature)."""

    def part(value: dict[str, object]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}.{'A' * 43}"


def anon_claims(client: Client) -> dict[str, object]:
    now = int(time.time())
    issuer = runtime_of(client).settings.issuer
    return {"iss": issuer, "iat": now, "exp": now + 60, "role": "anon", "token_type": "anon_key"}


@pytest.mark.parametrize(
    "header",
    [
        # A kid of the ring with a shared-secret algorithm: algorithm substitution.
        pytest.param({"alg": "HS256", "typ": "JWT", "kid": "<ring>"}, id="known-kid-hs256"),
        pytest.param({"alg": "none", "typ": "JWT", "kid": "<ring>"}, id="known-kid-alg-none"),
        pytest.param({"alg": "none", "typ": "JWT", "kid": "x" * 43}, id="unknown-kid-alg-none"),
        pytest.param({"alg": "HS256", "typ": "JWT", "kid": "x" * 43}, id="unknown-kid-hs256"),
        pytest.param({"alg": "ES256", "typ": "JWT"}, id="no-kid"),
        pytest.param({"alg": "ES256", "typ": "JWT", "kid": 7}, id="kid-not-a-string"),
        pytest.param({"alg": "ES256", "typ": "at+jwt", "kid": "x" * 43}, id="wrong-typ"),
        pytest.param({"alg": "ES256", "typ": "at+jwt", "kid": "<ring>"}, id="known-kid-wrong-typ"),
    ],
)
async def test_a_forged_anon_key_is_an_invalid_token_not_a_retired_one(
    client: Client, upstream: RecordingUpstream, header: dict[str, object]
) -> None:
    if header.get("kid") == "<ring>":
        header = {**header, "kid": runtime_of(client).keys.ring.current_kid}
    forged = unsigned_token(header, anon_claims(client))
    before = len(upstream.heads)

    response = await client.get("/rest/v1/projects", headers=bearer(forged))

    assert response.status_code == 401, response.text
    assert response.json()["code"] == "invalid_token"
    assert upstream.heads[before:] == []
