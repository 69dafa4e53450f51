"""Replicas on many hosts: two gateways sharing nothing but PostgreSQL and Redis.

Each gateway runs in a working folder of its own with no keys directory (GATEWAY_KEYSTORE=
database: the signing keys live in the store, sealed under GATEWAY_KEYS_PASSPHRASE), and
PostgREST has no JWKS file: it reads the JWKS from its authenticator role's
``pgrst.jwt_secret`` (``gateway postgrest bootstrap --jwks-in-database``) and checks every
session itself (``--check-sessions``: ``auth.check_session()`` as its db-pre-request). This is
the deployment docs/deploy.md describes for N replicas, on one machine.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Served, gateway, ok
from tests.e2e.test_proxy import bearer, sign_in
from tests.support.postgrest import PostgREST, run_postgrest
from tests.support.redis import RedisMissing, redis_server
from tests.support.server import run_gateway
from tests.support.waiting import wait_for

pytestmark = pytest.mark.postgres

#: Deadlines of the guarantees under test (docs/keys.md, docs/proxy.md); generous where a
#: sign-in (an argon2 hash) is part of each try.
KEY_PICKUP_DEADLINE = 5.0
LOGOUT_DEADLINE = 1.0
POSTGREST_RELOAD_DEADLINE = 10.0


@dataclass(frozen=True)
class Replicas:
    env: dict[str, str]
    first: str
    second: str
    postgrest: PostgREST
    folders: tuple[Path, Path]


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    try:
        # A logical database of its own: a shared Redis may hold another run's counters.
        with redis_server(database=random.randint(1, 15)) as url:
            yield url
    except RedisMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="module")
def replicas(
    served: Served,
    redis_url: str,
    postgrest_bin: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Replicas]:
    passphrase = {"GATEWAY_KEYS_PASSPHRASE": secrets.token_urlsafe(24)}
    # The module's keystore began as a directory (served); it moves into the store, as an
    # operator's would before the replicas start.
    ok(gateway({**served.env, **passphrase}, "keys", "migrate", "--to", "database"))
    env = {key: value for key, value in served.env.items() if key != "GATEWAY_KEYS_DIR"}
    env.update(
        {
            **passphrase,
            "GATEWAY_KEYSTORE": "database",
            "GATEWAY_REDIS_URL": redis_url,
            "GATEWAY_METRICS_TOKEN": secrets.token_urlsafe(32),
        }
    )
    ok(gateway(env, "postgrest", "bootstrap", "--jwks-in-database", "--check-sessions"))
    with run_postgrest(
        db_uri=served.authenticator_url,
        jwt_secret=None,  # no JWKS file: the role's pgrst.jwt_secret
        anon_role=served.anon,
        binary=postgrest_bin,
    ) as postgrest:
        env["GATEWAY_UPSTREAM_URL"] = postgrest.url
        folders = (tmp_path_factory.mktemp("host-a"), tmp_path_factory.mktemp("host-b"))
        with run_gateway(env, cwd=folders[0]) as first, run_gateway(env, cwd=folders[1]) as second:
            yield Replicas(env, first, second, postgrest, folders)


def kid_of(answer: dict[str, Any]) -> str:
    return str(jwt.get_unverified_header(answer["access_token"])["kid"])


def names_at(base: str, answer: dict[str, Any]) -> httpx.Response:
    return httpx.get(f"{base}/projects?select=name&order=id", headers=bearer(answer))


def current_kid(replicas: Replicas) -> str:
    listed = json.loads(ok(gateway(replicas.env, "keys", "list", "--json")))
    return str(next(key["kid"] for key in listed["keys"] if key["state"] == "current"))


def test_sign_in_on_one_replica_use_through_the_other_and_at_postgrest(
    replicas: Replicas,
) -> None:
    ada = sign_in(replicas.first)

    through_second = names_at(f"{replicas.second}/rest", ada)
    direct = names_at(replicas.postgrest.url, ada)

    assert through_second.status_code == 200, through_second.text
    assert direct.status_code == 200, replicas.postgrest.log_tail()
    assert through_second.json() == direct.json()
    assert {row["name"] for row in direct.json()} >= {"acme one", "acme two"}
    for folder in replicas.folders:
        assert not (folder / "keys").exists()  # nothing on disk: the keys are in the store


def test_a_rotation_on_one_host_reaches_both_replicas_and_postgrest(replicas: Replicas) -> None:
    before = sign_in(replicas.second)
    # Twice: after the second rotation the current key is one PostgREST has only learnt
    # through the database, never from anything on disk.
    for _ in range(2):
        ok(gateway(replicas.env, "keys", "rotate", "--force"))
    rotated = current_kid(replicas)
    assert rotated != kid_of(before)

    signed: dict[str, dict[str, Any]] = {}
    for name, base in (("first", replicas.first), ("second", replicas.second)):

        def signs_with_the_new_key(base: str = base, name: str = name) -> bool:
            signed[name] = sign_in(base)
            return kid_of(signed[name]) == rotated

        wait_for(signs_with_the_new_key, KEY_PICKUP_DEADLINE, f"the {name} replica's new key")

    for answer in (before, signed["first"], signed["second"]):
        for base in (replicas.first, replicas.second):
            response = names_at(f"{base}/rest", answer)
            assert response.status_code == 200, (kid_of(answer), response.text)
        wait_for(
            lambda answer=answer: names_at(replicas.postgrest.url, answer).status_code == 200,  # type: ignore[misc]
            POSTGREST_RELOAD_DEADLINE,
            f"PostgREST accepting a token of {kid_of(answer)}",
        )


def test_a_logout_on_one_replica_is_refused_by_the_other_and_by_postgrest(
    replicas: Replicas,
) -> None:
    ended, kept = sign_in(replicas.first), sign_in(replicas.first)
    assert names_at(replicas.postgrest.url, ended).status_code == 200

    logout = httpx.post(f"{replicas.first}/auth/logout", headers=bearer(ended))
    assert logout.status_code in (200, 204), logout.text

    wait_for(
        lambda: names_at(f"{replicas.second}/rest", ended).status_code == 401,
        LOGOUT_DEADLINE,
        "the other replica refusing the ended session",
    )
    refused = names_at(f"{replicas.second}/rest", ended)
    at_postgrest = names_at(replicas.postgrest.url, ended)
    assert refused.json()["code"] == "session_revoked"
    assert at_postgrest.status_code == 401, at_postgrest.text
    assert at_postgrest.json()["code"] == "session_revoked"
    # The user's other session goes on everywhere.
    assert names_at(f"{replicas.second}/rest", kept).status_code == 200
    assert names_at(replicas.postgrest.url, kept).status_code == 200


def scrape(base: str, token: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_parse_and_move_with_the_traffic(replicas: Replicas) -> None:
    token = replicas.env["GATEWAY_METRICS_TOKEN"]
    succeeded = ("gateway_sign_ins_total", (("outcome", "succeeded"),))
    before = scrape(replicas.second, token)

    answer = sign_in(replicas.second)
    proxied = names_at(f"{replicas.second}/rest", answer)
    after = scrape(replicas.second, token)

    assert proxied.status_code == 200
    assert after[succeeded] == before.get(succeeded, 0.0) + 1
    rest_ok = [
        value
        for (name, labels), value in after.items()
        if name == "gateway_requests_total"
        and ("group", "rest") in labels
        and ("status", "200") in labels
    ]
    assert sum(rest_ok) >= 1
    assert httpx.get(f"{replicas.second}/metrics").status_code == 401
