"""Hostile access tokens at GET /auth/me (in process) and at the /rest mount (real processes).

tests/unit/test_tokens_signing.py proves the same refusals at the signing API; here they are
proven where an attacker meets them: over HTTP, with a live session behind the forged token, so
that the forged property is the only thing wrong with it. Every refusal is a 401 with
``WWW-Authenticate: Bearer`` and a body that never repeats what the token claimed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from gateway.settings import Settings
from gateway.tokens import _reading as reading_module
from gateway.tokens import _sources as sources_module
from gateway.tokens import keystore as keystore_module
from gateway.tokens import signing as signing_module
from gateway.tokens.keystore import StoredKey, load_keystore, prune_keys, rotate_keys
from tests.e2e.conftest import Served
from tests.e2e.test_proxy import sign_in
from tests.integration.conftest import Client, bearer, login, runtime_of

MARKER = "pwned-marker-5f1e"
FIVE_YEARS = 5 * 365 * 24 * 3600

# The in-process tests need no second store: token verification does not touch it.
sqlite_only = pytest.mark.parametrize("store_env", ["sqlite"], indirect=True)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def segment(document: dict[str, Any]) -> str:
    return b64(json.dumps(document, separators=(",", ":")).encode())


class Forger:
    """Makes hostile variants of a genuine token, with the gateway's own signing key at hand."""

    def __init__(self, genuine: str, key: StoredKey) -> None:
        self.genuine = genuine
        self.key = key
        self.header: dict[str, Any] = jwt.get_unverified_header(genuine)
        self.claims: dict[str, Any] = jwt.decode(genuine, options={"verify_signature": False})
        assert self.header["kid"] == key.kid

    def signed(
        self, claims: dict[str, Any] | None = None, header: dict[str, Any] | None = None
    ) -> str:
        """Properly signed by the gateway's current key: only the claims or header are wrong."""
        payload = {**self.claims, "marker": MARKER, **(claims or {})}
        payload = {name: value for name, value in payload.items() if value is not None}
        headers = {"alg": self.key.alg, "kid": self.key.kid, "typ": "JWT", **(header or {})}
        headers = {name: value for name, value in headers.items() if value is not None}
        # Built by hand: PyJWT would refuse to write some of these headers (a list as kid).
        signing_input = f"{segment(headers)}.{segment(payload)}".encode()
        algorithm = jwt.get_algorithm_by_name(self.key.alg)
        signature = algorithm.sign(signing_input, self.key.private_key)
        return f"{signing_input.decode()}.{b64(signature)}"

    def raw(self, header: bytes | dict[str, Any], payload: bytes | dict[str, Any]) -> str:
        """Header and payload as given, with the genuine token's signature."""
        parts = [
            b64(part) if isinstance(part, bytes) else segment(part) for part in (header, payload)
        ]
        return ".".join([*parts, self.genuine.split(".")[2]])

    def hmac(self, alg: str, secret: bytes) -> str:
        signing_input = (
            f"{segment({'alg': alg, 'kid': self.key.kid, 'typ': 'JWT'})}."
            f"{segment({**self.claims, 'role': 'postgres', 'marker': MARKER})}"
        )
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
        signature = hmac.new(secret, signing_input.encode(), digest[alg.upper()]).digest()
        return f"{signing_input}.{b64(signature)}"

    def public_pem(self) -> bytes:
        return self.key.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def public_jwk(self) -> bytes:
        return json.dumps(self.key.public_jwk).encode()


def hostile_tokens(forger: Forger) -> dict[str, str]:
    """Every forged or defective token, by the attack it stands for."""
    now = int(time.time())
    claims = forger.claims
    genuine_header, genuine_payload, _ = forger.genuine.split(".")
    evil_claims = {**claims, "role": "postgres", "marker": MARKER}
    tokens: dict[str, str] = {}
    for alg in ("none", "None", "NONE", "nOnE"):
        header = segment({"alg": alg, "kid": forger.key.kid, "typ": "JWT"})
        tokens[f"alg {alg}, empty signature"] = f"{header}.{segment(evil_claims)}."
        tokens[f"alg {alg}, junk signature"] = f"{header}.{segment(evil_claims)}.{b64(b'x')}"
    for alg in ("HS256", "HS512", "hs256"):
        tokens[f"{alg} keyed with our public key (PEM)"] = forger.hmac(alg, forger.public_pem())
        tokens[f"{alg} keyed with our public key (JWK JSON)"] = forger.hmac(
            alg, forger.public_jwk()
        )
    for kid in (
        "../../../../etc/passwd",
        f"../{forger.key.kid}",
        f"{forger.key.kid}.pem",
        "' OR '1'='1' --",
        "unknown-kid",
        "",
    ):
        tokens[f"kid {kid!r}"] = forger.signed(header={"kid": kid})
    tokens["no kid"] = forger.signed(header={"kid": None})
    tokens["kid not a string"] = forger.signed(header={"kid": [forger.key.kid]})
    signature = forger.genuine.split(".")[2]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    tokens["tampered signature"] = f"{genuine_header}.{genuine_payload}.{flipped}"
    tokens["tampered payload, genuine signature"] = forger.raw(unb64(genuine_header), evil_claims)
    tokens["expired"] = forger.signed({"iat": now - 7200, "exp": now - 3600})
    tokens["nbf in the future"] = forger.signed({"nbf": now + 3600})
    tokens["iat years in the future"] = forger.signed(
        {"iat": now + FIVE_YEARS, "exp": now + FIVE_YEARS + 3600}
    )
    tokens["iat an hour in the future, exp still valid"] = forger.signed({"iat": now + 3600})
    tokens["no exp"] = forger.signed({"exp": None})
    tokens["no iat"] = forger.signed({"iat": None})
    tokens["exp not a number"] = forger.signed({"exp": "never"})
    tokens["wrong issuer"] = forger.signed({"iss": "https://evil.example"})
    tokens["no issuer"] = forger.signed({"iss": None})
    tokens["an audience we never issue"] = forger.signed({"aud": "https://other.example"})
    tokens["over 8 KiB"] = forger.signed({"padding": "x" * 9000})
    tokens["typ other than JWT"] = forger.signed(header={"typ": "at+jwt+evil"})
    # The claims an access token is made of, each missing or wrong, under a genuine signature.
    tokens["token_type refresh_token"] = forger.signed({"token_type": "refresh_token"})
    tokens["token_type doctor_probe"] = forger.signed({"token_type": "doctor_probe"})
    tokens["no token_type"] = forger.signed({"token_type": None})
    tokens["no sid"] = forger.signed({"sid": None})
    tokens["sid not a string"] = forger.signed({"sid": 42})
    tokens["empty sid"] = forger.signed({"sid": ""})
    tokens["no sub"] = forger.signed({"sub": None})
    tokens["sub not a string"] = forger.signed({"sub": int(claims["sub"])})
    tokens["role postgres, signed by our key"] = forger.signed({"role": "postgres"})
    tokens["role off the allow-list"] = forger.signed({"role": "reporting"})
    tokens["no role"] = forger.signed({"role": None})
    # Duplicate members: the signature covers the exact bytes, so a client cannot add any.
    header_text = unb64(genuine_header).decode()
    tokens["duplicate alg in the header (none last)"] = forger.raw(
        header_text[:-1].encode() + b',"alg":"none"}', unb64(genuine_payload)
    )
    tokens["duplicate kid in the header"] = forger.raw(
        header_text[:-1].encode() + b',"kid":"unknown-kid"}', unb64(genuine_payload)
    )
    payload_text = unb64(genuine_payload).decode()
    tokens["duplicate role in the payload"] = forger.raw(
        unb64(genuine_header),
        payload_text[:-1].encode() + f',"role":"postgres","marker":"{MARKER}"}}'.encode(),
    )
    tokens["duplicate sub in the payload"] = forger.raw(
        unb64(genuine_header), payload_text[:-1].encode() + b',"sub":"1"}'
    )
    return tokens


def assert_refused(response: httpx.Response, what: str) -> None:
    assert response.status_code == 401, (what, response.status_code, response.text)
    assert response.headers["www-authenticate"].startswith("Bearer"), what
    body = response.json()
    assert set(body) == {"code", "message"}, (what, body)
    assert MARKER not in response.text, (what, response.text)
    assert "postgres" not in response.text, (what, response.text)


# --- GET /auth/me, in process ------------------------------------------------------------


async def forger_for(client: Client) -> Forger:
    token = (await login(client))["access_token"]
    settings = runtime_of(client).settings
    return Forger(token, load_keystore(settings).current)


@sqlite_only
async def test_every_hostile_token_is_refused_at_auth_me_without_echoing_its_claims(
    client: Client,
) -> None:
    forger = await forger_for(client)
    assert (await client.get("/auth/me", headers=bearer(forger.genuine))).status_code == 200
    # The control: a token signed by our key with only the marker added is accepted, so each
    # refusal below is due to the one defect it names.
    assert (await client.get("/auth/me", headers=bearer(forger.signed()))).status_code == 200

    tokens = hostile_tokens(forger)
    for what, token in tokens.items():
        assert_refused(await client.get("/auth/me", headers=bearer(token)), what)
    assert len(tokens) >= 40


@sqlite_only
async def test_a_token_issued_years_in_the_future_is_refused_at_auth_me(client: Client) -> None:
    forger = await forger_for(client)
    now = int(time.time())
    token = forger.signed({"iat": now + FIVE_YEARS, "exp": now + FIVE_YEARS + 3600})

    assert_refused(await client.get("/auth/me", headers=bearer(token)), "iat in 5 years")


@sqlite_only
async def test_a_token_of_a_pruned_key_is_refused_at_once(client: Client) -> None:
    forger = await forger_for(client)
    settings = runtime_of(client).settings
    old = forger.signed()
    assert (await client.get("/auth/me", headers=bearer(old))).status_code == 200

    rotate_keys(settings, force=True)
    prune_keys(settings, force=True)
    assert await runtime_of(client).keys.refresh()

    assert forger.key.kid not in runtime_of(client).keys.ring.kids
    assert_refused(await client.get("/auth/me", headers=bearer(old)), "pruned key")
    assert_refused(await client.get("/rest/anything", headers=bearer(old)), "pruned key (mount)")


@sqlite_only
async def test_a_flood_of_unknown_kids_never_makes_the_gateway_reread_its_keystore(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    forger = await forger_for(client)
    runtime = runtime_of(client)
    ring = runtime.keys.ring
    reads: list[str] = []

    def counting(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            reads.append(name)
            return real(*args, **kwargs)

        return wrapper

    for module, name in [
        (sources_module, "load_keyring"),
        (signing_module, "load_keystore"),
        (keystore_module, "load_keystore"),
        (keystore_module, "read_manifest"),
        (reading_module, "load"),
        (reading_module, "read_manifest"),
    ]:
        monkeypatch.setattr(module, name, counting(name, getattr(module, name)))

    for number in range(200):
        token = forger.signed(header={"kid": f"unknown-{number:03d}"})
        path = "/auth/me" if number % 2 else "/rest/todos"
        response = await client.get(path, headers=bearer(token))
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "invalid_token"

    assert reads == []
    assert runtime.keys.ring is ring


# --- the /rest mount, through real processes -----------------------------------------------


def test_hostile_tokens_are_refused_at_the_proxy_before_postgrest(
    proxy: str, served: Served
) -> None:
    genuine = sign_in(proxy)["access_token"]
    key = load_keystore(Settings(keys_dir=str(served.keys_dir))).current
    forger = Forger(genuine, key)
    assert httpx.get(f"{proxy}/rest/projects", headers=bearer(forger.signed())).status_code == 200

    tokens = hostile_tokens(forger)
    subset = [
        "alg none, empty signature",
        "alg nOnE, junk signature",
        "HS256 keyed with our public key (PEM)",
        "HS256 keyed with our public key (JWK JSON)",
        "kid '../../../../etc/passwd'",
        "kid \"' OR '1'='1' --\"",
        "no kid",
        "tampered payload, genuine signature",
        "expired",
        "nbf in the future",
        "iat years in the future",
        "no exp",
        "wrong issuer",
        "an audience we never issue",
        "over 8 KiB",
        "duplicate alg in the header (none last)",
        "duplicate role in the payload",
        "token_type refresh_token",
        "token_type doctor_probe",
        "no token_type",
        "no sid",
        "no sub",
        "role postgres, signed by our key",
        "role off the allow-list",
        "no role",
    ]
    with httpx.Client(base_url=proxy) as http:
        for what in subset:
            response = http.get("/rest/rpc/echo_request", headers=bearer(tokens[what]))
            assert_refused(response, what)
            # The gateway's own answer, not PostgREST's: PostgREST says PGRST301 and the like.
            assert response.json()["code"] == "invalid_token", (what, response.text)


def test_a_flood_of_unknown_kids_at_the_proxy_is_refused_quickly(
    proxy: str, served: Served, tmp_path: Path
) -> None:
    genuine = sign_in(proxy)["access_token"]
    forger = Forger(genuine, load_keystore(Settings(keys_dir=str(served.keys_dir))).current)
    tokens = [forger.signed(header={"kid": f"flood-{n:03d}"}) for n in range(200)]

    started = time.monotonic()
    with httpx.Client(base_url=proxy) as http:
        statuses = {http.get("/rest/projects", headers=bearer(t)).status_code for t in tokens}
    elapsed = time.monotonic() - started

    assert statuses == {401}
    # The genuine token still works after the flood.
    assert httpx.get(f"{proxy}/rest/projects", headers=bearer(genuine)).status_code == 200
    assert elapsed < 20, elapsed
