"""PostgREST 12.0.2 verifies asymmetric tokens against a JWKS file, and re-reads it on reload.

The gateway signs with private keys and hands PostgREST only the public JWKS, so these are the
behaviours it relies on: several keys at once (rotation), the three algorithms it may sign with,
refusal of keys that are not published, and picking up a new JWKS without a restart.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.e2e.conftest import StartPostgREST, TodosDatabase
from tests.support.postgrest import PostgREST, Response, http_get

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
TODOS = [{"id": 1, "task": "rotate the signing key"}, {"id": 2, "task": "publish the JWKS"}]
RELOAD_TIMEOUT = 10.0


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    private: PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        jwk = jwt.get_algorithm_by_name(self.alg).to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def token(self, role: str) -> str:
        claims = {"role": role, "exp": int(time.time()) + 300}
        return jwt.encode(claims, self.private, algorithm=self.alg, headers={"kid": self.kid})


def new_key(alg: str, kid: str) -> SigningKey:
    private: PrivateKey
    if alg == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
    elif alg == "EdDSA":
        private = ed25519.Ed25519PrivateKey.generate()
    elif alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(alg)
    return SigningKey(kid, alg, private)


def write_jwks(path: Path, *keys: SigningKey) -> Path:
    path.write_text(json.dumps({"keys": [key.public_jwk() for key in keys]}))
    return path


def get_todos(server: PostgREST, token: str | None = None) -> Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http_get(f"{server.url}/todos?order=id", headers)


def notify(url: str, channel: str, payload: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            await connection.execute("SELECT pg_notify($1, $2)", channel, payload)
        finally:
            await connection.close()

    asyncio.run(run())


def test_postgrest_accepts_es256_token_from_multi_key_jwks(
    start_postgrest: StartPostgREST, todos_database: TodosDatabase, tmp_path: Path
) -> None:
    first, second = new_key("ES256", "es-1"), new_key("ES256", "es-2")
    server = start_postgrest(write_jwks(tmp_path / "jwks.json", first, second))

    accepted = get_todos(server, second.token(todos_database.authenticated_role))
    assert (accepted.status, accepted.json()) == (200, TODOS)

    # Without a token the request runs as the anonymous role, which may not read todos.
    anonymous = get_todos(server)
    assert anonymous.status == 401
    assert anonymous.json() == {
        "code": "42501",
        "details": None,
        "hint": None,
        "message": "permission denied for table todos",
    }


def test_postgrest_refuses_token_from_key_not_in_jwks(
    start_postgrest: StartPostgREST, todos_database: TodosDatabase, tmp_path: Path
) -> None:
    published, unpublished = new_key("ES256", "es-1"), new_key("ES256", "es-2")
    server = start_postgrest(write_jwks(tmp_path / "jwks.json", published))

    refused = get_todos(server, unpublished.token(todos_database.authenticated_role))
    assert refused.status == 401
    assert refused.json() == {
        "code": "PGRST301",
        "details": None,
        "hint": None,
        "message": "JWSError JWSInvalidSignature",
    }


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_postgrest_accepts_token_signed_with_each_algorithm_from_jwks(
    alg: str, start_postgrest: StartPostgREST, todos_database: TodosDatabase, tmp_path: Path
) -> None:
    key = new_key(alg, f"{alg.lower()}-1")
    server = start_postgrest(write_jwks(tmp_path / "jwks.json", key))

    accepted = get_todos(server, key.token(todos_database.authenticated_role))
    assert (accepted.status, accepted.json()) == (200, TODOS)


def test_postgrest_rereads_jwks_file_on_notify_reload_config(
    start_postgrest: StartPostgREST, todos_database: TodosDatabase, tmp_path: Path
) -> None:
    old, new = new_key("ES256", "old"), new_key("ES256", "new")
    jwks = write_jwks(tmp_path / "jwks.json", old)
    server = start_postgrest(jwks)
    token = new.token(todos_database.authenticated_role)
    assert get_todos(server, token).status == 401

    write_jwks(jwks, old, new)
    notify(todos_database.admin_url, "pgrst", "reload config")

    deadline = time.monotonic() + RELOAD_TIMEOUT
    while (reply := get_todos(server, token)).status != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (reply.status, reply.json()) == (200, TODOS), server.log_tail()
    # The key already published before the reload stays accepted.
    assert get_todos(server, old.token(todos_database.authenticated_role)).status == 200
