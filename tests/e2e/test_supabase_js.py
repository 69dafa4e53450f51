"""supabase-js, unchanged, against a real gateway process, the real PostgREST and PostgreSQL.

The Node script (tests/support/supabase_js/journey.js) drives the real ``@supabase/supabase-js``
through sign-in, a counted select, an insert, an rpc, getUser, refreshSession and signOut, and
prints what each call returned; the assertions are here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import PASSWORD, Served, gateway, ok
from tests.e2e.test_proxy import APP_ORIGIN, proxy
from tests.support.postgrest import PostgREST
from tests.support.server import run_gateway
from tests.support.supabase import run_supabase_script
from tests.support.waiting import wait_for

__all__ = ["proxy"]


def anon_key(env: dict[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(ok(gateway(env, "keys", "anon-key", "--json")))
    return document


@pytest.fixture
def journey(served: Served, proxy: str) -> dict[str, Any]:
    key = anon_key(served.env)
    return run_supabase_script(
        "journey.js",
        {
            "SUPABASE_URL": proxy,
            "SUPABASE_ANON_KEY": key["anon_key"],
            "SUPABASE_EMAIL": "ada@example.com",
            "SUPABASE_PASSWORD": PASSWORD,
            "SUPABASE_ORGANIZATION_ID": str(served.acme),
        },
    )


def test_supabase_js_signs_in_reads_writes_calls_refreshes_and_signs_out_unchanged(
    journey: dict[str, Any], served: Served, proxy: str
) -> None:
    assert "fatal" not in journey, journey.get("fatal")
    assert journey["signIn"]["error"] is None
    assert journey["signIn"]["hasSession"] is True
    assert journey["select"] == {
        "error": None,
        "status": 200,
        "count": 2,
        "names": ["acme one", "acme two"],
    }
    assert journey["insert"]["error"] is None
    assert journey["insert"]["status"] == 201
    assert journey["insert"]["rows"][0]["name"] == "made by supabase-js"
    assert journey["insert"]["rows"][0]["organization_id"] == served.acme
    assert journey["rpc"] == {"error": None, "data": 3}
    assert journey["getUser"]["error"] is None
    assert journey["getUser"]["id"] == journey["signIn"]["userId"]
    assert journey["getUser"]["email"] == "ada@example.com"
    assert journey["refresh"] == {"error": None, "newAccessToken": True, "newRefreshToken": True}
    assert journey["afterRefresh"] == {"error": None, "count": 3}
    assert journey["signOut"] == {"error": None}
    # The token held at sign-out is refused at /rest/v1 within a second (the contract's
    # deadline for every gateway process), not when it expires.
    assert journey["staleSelect"]["status"] == 401
    assert journey["staleSelect"]["refusedAfterMs"] < 1000
    assert journey["staleRaw"]["status"] == 401
    assert journey["staleRaw"]["body"]["code"] == "session_revoked"
    first = httpx.get(
        f"{proxy}/rest/v1/projects",
        headers={"Authorization": f"Bearer {journey['firstAccessToken']}"},
    )
    assert first.status_code == 401
    # Signed out, supabase-js sends the anon key: PostgREST runs as the anon role, which may
    # not read projects.
    assert journey["signedOutSelect"]["status"] == 401
    assert journey["signedOutSelect"]["error"]["code"] == "42501"


def test_the_anon_key_reaches_postgrest_as_no_token_and_apikey_never_reaches_it(
    journey: dict[str, Any], served: Served
) -> None:
    echoed = journey["anonymousEcho"]

    assert echoed["error"] is None
    headers = echoed["data"]["headers"]
    assert "authorization" not in headers
    assert "apikey" not in headers
    assert (echoed["data"]["claims"] or {}).get("role") in (None, served.anon)


def test_a_user_token_sent_as_apikey_never_reaches_postgrest_nor_changes_who_calls(
    served: Served, proxy: str
) -> None:
    signed_in = httpx.post(
        f"{proxy}/auth/v1/token?grant_type=password",
        json={"email": "ada@example.com", "password": PASSWORD},
    )
    token = signed_in.json()["access_token"]

    echoed = httpx.post(f"{proxy}/rest/v1/rpc/echo_request", headers={"apikey": token})

    assert echoed.status_code == 200, echoed.text
    assert "apikey" not in echoed.json()["headers"]
    assert "authorization" not in echoed.json()["headers"]


def test_an_anon_key_whose_signing_key_was_pruned_is_refused_and_says_what_to_do(
    served: Served, postgrest: PostgREST, tmp_path: Path
) -> None:
    env = {
        **served.env,
        # A keystore of its own: rotating it leaves the module's other tests alone.
        "GATEWAY_KEYS_DIR": str(tmp_path / "keys"),
        "GATEWAY_UPSTREAM_URL": postgrest.url,
    }
    ok(gateway(env, "keys", "init"))
    key = anon_key(env)["anon_key"]
    with run_gateway(env, cwd=tmp_path) as base:
        anonymous = httpx.get(
            f"{base}/rest/v1/rpc/echo_request",
            headers={"apikey": key, "Authorization": f"Bearer {key}"},
        )
        assert anonymous.status_code == 200, anonymous.text

        ok(gateway(env, "keys", "rotate", "--force"))
        still = httpx.get(
            f"{base}/rest/v1/rpc/echo_request", headers={"Authorization": f"Bearer {key}"}
        )
        assert still.status_code == 200, "a rotation alone must not break the anon key"
        pruned = gateway(env, "keys", "prune", "--force")
        assert pruned.exit_code == 0, pruned.output
        assert "anon keys signed by" in pruned.stderr

        def refused() -> bool:
            answer = httpx.get(
                f"{base}/rest/v1/projects", headers={"Authorization": f"Bearer {key}"}
            )
            return answer.status_code == 401 and answer.json()["code"] == "anon_key_retired"

        wait_for(refused, 10, "the pruned anon key's refusal")
        auth = httpx.get(f"{base}/auth/v1/settings", headers={"apikey": key})
        fresh = anon_key(env)["anon_key"]
        renewed = httpx.get(f"{base}/auth/v1/settings", headers={"apikey": fresh})

    assert auth.status_code == 401
    assert auth.json()["error_code"] == "anon_key_retired"
    assert "gateway keys anon-key" in auth.json()["msg"]
    assert renewed.status_code == 200


@pytest.mark.parametrize("path", ["/auth/v1/token?grant_type=password", "/rest/v1/projects"])
def test_a_browser_may_send_supabase_js_headers_from_an_allowed_origin(
    proxy: str, path: str
) -> None:
    preflight = httpx.options(
        f"{proxy}{path}",
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "apikey, authorization, x-client-info",
        },
    )

    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == APP_ORIGIN
    allowed = preflight.headers["access-control-allow-headers"].split(", ")
    for name in ("apikey", "authorization", "x-client-info", "x-supabase-api-version"):
        assert name in allowed
