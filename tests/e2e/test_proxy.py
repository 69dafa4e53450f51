"""The /rest mount, through a real gateway process, to the real PostgREST."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import PASSWORD, Served, gateway, ok
from tests.support.postgres import free_port
from tests.support.postgrest import PostgREST
from tests.support.server import run_gateway
from tests.support.waiting import wait_for

APP_ORIGIN = "https://app.example.com"
CHANGE_DEADLINE = 1.0  # logout and suspension reach every gateway process within 1 s


@pytest.fixture
def proxy(served: Served, postgrest: PostgREST, tmp_path: Path) -> Iterator[str]:
    env = {
        **served.env,
        "GATEWAY_UPSTREAM_URL": postgrest.url,
        "GATEWAY_CORS_ORIGINS": APP_ORIGIN,
        "GATEWAY_AUTH_RATE_LIMIT": "100000",
    }
    with run_gateway(env, cwd=tmp_path) as base_url:
        yield base_url


def sign_in(base: str, email: str = "ada@example.com", **extra: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{base}/auth/login", json={"email": email, "password": PASSWORD, **extra}
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def bearer(answer: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {answer['access_token']}"}


def echo(base: str, headers: dict[str, str] | None = None, **kwargs: Any) -> dict[str, Any]:
    response = httpx.get(f"{base}/rest/rpc/echo_request", headers=headers or {}, **kwargs)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_token_reads_its_organizations_rows_with_postgrest_headers_intact(
    proxy: str,
) -> None:
    response = httpx.get(
        f"{proxy}/rest/projects?select=name&order=id",
        headers={**bearer(sign_in(proxy)), "Prefer": "count=exact", "Range": "0-0"},
    )

    assert response.status_code == 206
    assert response.json() == [{"name": "acme one"}]
    assert response.headers["content-range"] == "0-0/2"
    assert response.headers["preference-applied"] == "count=exact"


def test_without_a_token_the_request_goes_upstream_as_anonymous(proxy: str) -> None:
    anonymous = httpx.get(f"{proxy}/rest/projects")
    claims = echo(proxy)["claims"]

    assert anonymous.status_code == 401  # PostgREST's own answer: anon has no grant
    assert "permission denied" in anonymous.json()["message"]
    assert "sub" not in claims


def test_forged_forwarding_headers_and_gateway_cookies_never_reach_the_database(
    proxy: str,
) -> None:
    answer = sign_in(proxy, cookie=True)
    jar = {
        "gw_refresh": "pgw_rt_secret",
        "gw_csrf": "c",
        "theme": "dark",
    }
    seen = echo(
        proxy,
        headers={
            "X-Forwarded-For": "6.6.6.6",
            "X_Forwarded_For": "6.6.6.7",
            "Forwarded": "for=6.6.6.8",
            "X-Forwarded-Host": "evil.example",
            "X-Request-Id": "trace-42",
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "drop me",
            "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items()),
        },
    )

    headers, cookies = seen["headers"], seen["cookies"]
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert "forwarded" not in headers
    assert "x_forwarded_for" not in headers
    assert headers["x-forwarded-host"] != "evil.example"
    assert headers["x-request-id"] == "trace-42"
    assert "x-secret-hop" not in headers
    assert cookies == {"theme": "dark"}
    assert answer["csrf_token"]


def test_location_is_rewritten_under_the_mount_and_bodiless_answers_stay_bodiless(
    proxy: str, served: Served
) -> None:
    admin = bearer(sign_in(proxy))

    created = httpx.post(
        f"{proxy}/rest/projects",
        headers={**admin, "Prefer": "return=headers-only"},
        json={"organization_id": served.acme, "name": "via proxy"},
    )
    head = httpx.head(f"{proxy}/rest/projects", headers=admin)
    deleted = httpx.delete(f"{proxy}/rest/projects?name=eq.via%20proxy", headers=admin)

    assert created.status_code == 201
    assert created.headers["location"].startswith("/rest/projects?id=eq.")
    assert head.status_code == 200
    assert head.content == b""
    assert deleted.status_code == 204
    assert deleted.content == b""


def test_logout_takes_effect_at_the_proxy_at_once(proxy: str) -> None:
    answer = sign_in(proxy)
    assert httpx.get(f"{proxy}/rest/projects", headers=bearer(answer)).status_code == 200

    logout = httpx.post(f"{proxy}/auth/logout", headers=bearer(answer))
    # No wait: the process that ended the session knew it before it answered.
    refused = httpx.get(f"{proxy}/rest/projects", headers=bearer(answer))

    assert logout.status_code == 204
    assert refused.status_code == 401
    assert refused.json()["code"] == "session_revoked"
    assert refused.headers["www-authenticate"] == "Bearer"


def test_suspension_takes_effect_at_the_proxy_within_a_second(proxy: str, served: Served) -> None:
    answer = sign_in(proxy, "carl@example.com")
    ok(gateway(served.env, "users", "suspend", "carl@example.com"))
    try:
        wait_for(
            lambda: httpx.get(f"{proxy}/rest/projects", headers=bearer(answer)).status_code == 403,
            CHANGE_DEADLINE,
            "a 403 after suspension",
        )
        refused = httpx.get(f"{proxy}/rest/projects", headers=bearer(answer))
    finally:
        ok(gateway(served.env, "users", "activate", "carl@example.com"))

    assert refused.json()["code"] == "user_suspended"


def test_forged_tokens_are_refused_by_the_gateway_itself(proxy: str) -> None:
    token = sign_in(proxy)["access_token"]
    header, payload, signature = token.split(".")

    tampered = httpx.get(
        f"{proxy}/rest/projects",
        headers={"Authorization": f"Bearer {header}.{payload}x.{signature}"},
    )
    basic = httpx.get(f"{proxy}/rest/projects", headers={"Authorization": "Basic YTpi"})

    assert tampered.status_code == basic.status_code == 401
    assert tampered.json()["code"] == "invalid_token"
    assert payload not in tampered.text


def test_cookie_authenticated_writes_need_the_csrf_token(proxy: str, served: Served) -> None:
    with httpx.Client(base_url=proxy) as browser:
        csrf = browser.post(
            "/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "cookie": True}
        ).json()["csrf_token"]
        read = browser.get("/rest/projects")
        forged = browser.post(
            "/rest/projects", json={"organization_id": served.acme, "name": "csrf"}
        )
        genuine = browser.post(
            "/rest/projects",
            headers={"X-CSRF-Token": csrf},
            json={"organization_id": served.acme, "name": "csrf ok"},
        )
        browser.delete("/rest/projects?name=eq.csrf%20ok", headers={"X-CSRF-Token": csrf})

    assert read.status_code == 200
    assert forged.status_code == 403
    assert forged.json()["code"] == "csrf_failed"
    assert genuine.status_code == 201


def test_cors_belongs_to_the_gateway(proxy: str) -> None:
    preflight = httpx.options(
        f"{proxy}/rest/projects",
        headers={
            "Origin": APP_ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, prefer",
        },
    )
    foreign = httpx.options(
        f"{proxy}/rest/projects",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    actual = httpx.get(
        f"{proxy}/rest/projects", headers={**bearer(sign_in(proxy)), "Origin": APP_ORIGIN}
    )

    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == APP_ORIGIN
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert "PATCH" in preflight.headers["access-control-allow-methods"]
    # A single-page app may ask for presigned URLs in its PostgREST answers.
    assert "presign" in preflight.headers["access-control-allow-headers"].split(", ")
    assert "access-control-allow-origin" not in foreign.headers
    assert actual.headers["access-control-allow-origin"] == APP_ORIGIN
    assert "origin" in actual.headers["vary"].lower()
    exposed = actual.headers["access-control-expose-headers"]
    for name in (
        "content-range",
        "range-unit",
        "location",
        "content-location",
        "preference-applied",
    ):
        assert name in exposed


def raw_get(base: str, target: str) -> tuple[int, bytes]:
    """Send a request line exactly as written (HTTP clients normalise dot segments away)."""
    import socket

    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.split(b"\r\n\r\n", 1)[1]


@pytest.mark.parametrize(
    "target", ["/rest/../auth/me", "/rest/%2e%2e/auth/me", "/rest/%2E%2E/rpc/x", "/rest/./projects"]
)
def test_a_path_that_climbs_out_of_the_mount_is_refused(proxy: str, target: str) -> None:
    status, body = raw_get(proxy, target)

    assert status == 400
    assert json.loads(body)["code"] == "invalid_path"


def test_postgrest_down_gives_502_not_a_hang(served: Served, tmp_path: Path) -> None:
    env = {**served.env, "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{free_port()}"}
    with run_gateway(env, cwd=tmp_path) as base_url:
        response = httpx.get(f"{base_url}/rest/projects", timeout=30)

    assert response.status_code == 502
    assert response.json()["code"] == "upstream_unavailable"
    assert json.loads(response.text)["message"]


# --- every PostgREST feature through the mount ---------------------------------------------------


def test_filters_embedding_and_ordering_pass_through(proxy: str) -> None:
    response = httpx.get(
        f"{proxy}/rest/projects?select=name,project_notes(body)&name=like.acme*&order=name.desc",
        headers=bearer(sign_in(proxy)),
    )

    assert response.status_code == 200
    assert response.json() == [
        {"name": "acme two", "project_notes": [{"body": "note on acme two"}]},
        {"name": "acme one", "project_notes": [{"body": "note on acme one"}]},
    ]


def test_insert_update_and_delete_with_return_representation(proxy: str, served: Served) -> None:
    admin = {**bearer(sign_in(proxy)), "Prefer": "return=representation"}

    created = httpx.post(
        f"{proxy}/rest/projects",
        headers=admin,
        json={"organization_id": served.acme, "name": "crud"},
    )
    project_id = created.json()[0]["id"]
    updated = httpx.patch(
        f"{proxy}/rest/projects?id=eq.{project_id}", headers=admin, json={"name": "crud renamed"}
    )
    deleted = httpx.delete(f"{proxy}/rest/projects?id=eq.{project_id}", headers=admin)

    assert created.status_code == 201
    assert updated.status_code == 200
    assert updated.json()[0]["name"] == "crud renamed"
    assert deleted.status_code == 200
    assert deleted.json()[0]["id"] == project_id


def test_rpc_over_get_and_post(proxy: str) -> None:
    token = bearer(sign_in(proxy))

    over_get = httpx.get(f"{proxy}/rest/rpc/echo_request", headers=token)
    over_post = httpx.post(f"{proxy}/rest/rpc/echo_request", headers=token, json={})

    assert over_get.status_code == over_post.status_code == 200
    assert over_get.json()["claims"]["sub"] == over_post.json()["claims"]["sub"]
    assert over_post.json()["headers"]["authorization"].startswith("Bearer ")


def test_csv_and_singular_object_answers(proxy: str) -> None:
    token = bearer(sign_in(proxy))

    csv = httpx.get(
        f"{proxy}/rest/projects?select=name&order=id", headers={**token, "Accept": "text/csv"}
    )
    single = httpx.get(
        f"{proxy}/rest/projects?select=name&name=eq.acme%20one",
        headers={**token, "Accept": "application/vnd.pgrst.object+json"},
    )

    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[:3] == ["name", '"acme one"', '"acme two"']
    assert single.json() == {"name": "acme one"}


def test_a_10_mb_answer_streams_through(proxy: str) -> None:
    with httpx.stream(
        "GET", f"{proxy}/rest/rpc/big_text?mebibytes=10", headers=bearer(sign_in(proxy)), timeout=60
    ) as response:
        chunks = [len(chunk) for chunk in response.iter_raw()]

    assert response.status_code == 200
    assert sum(chunks) >= 10 * 1024 * 1024
    assert len(chunks) > 1  # it arrived in pieces, not as one buffered blob


def test_postgrest_openapi_is_served_at_the_mount_root(proxy: str) -> None:
    response = httpx.get(f"{proxy}/rest/", headers=bearer(sign_in(proxy)))

    assert response.status_code == 200
    assert "/projects" in response.json()["paths"]


def test_the_supabase_postgrest_client_works_through_the_gateway(proxy: str) -> None:
    from postgrest import SyncPostgrestClient

    token = sign_in(proxy)["access_token"]
    with SyncPostgrestClient(
        f"{proxy}/rest", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        rows = client.from_("projects").select("name").order("id").execute()

    data: list[dict[str, Any]] = list(rows.data)  # type: ignore[arg-type]
    assert [row["name"] for row in data] == ["acme one", "acme two"]


def test_connection_naming_authorization_cannot_strip_the_token(proxy: str) -> None:
    seen = echo(proxy, headers={**bearer(sign_in(proxy)), "Connection": "authorization"})

    assert seen["claims"]["sub"]
    assert seen["headers"]["authorization"].startswith("Bearer ")


def test_a_body_over_the_proxy_limit_is_refused_with_413(
    served: Served, postgrest: PostgREST, tmp_path: Path
) -> None:
    env = {**served.env, "GATEWAY_UPSTREAM_URL": postgrest.url, "GATEWAY_PROXY_MAX_BODY": "1024"}
    with run_gateway(env, cwd=tmp_path) as base:
        token = bearer(sign_in(base))
        declared = httpx.post(
            f"{base}/rest/rpc/echo_request", headers=token, content=b"{" + b" " * 2000 + b"}"
        )

        def chunks() -> Iterator[bytes]:
            yield b"{"
            for _ in range(10):
                yield b" " * 512
            yield b"}"

        chunked = httpx.post(
            f"{base}/rest/rpc/echo_request",
            headers={**token, "Content-Type": "application/json"},
            content=chunks(),
        )

    assert declared.status_code == 413
    assert declared.json()["code"] == "payload_too_large"
    assert chunked.status_code == 413


def test_logout_in_one_gateway_process_refuses_the_token_in_another_within_a_second(
    served: Served, postgrest: PostgREST, tmp_path: Path
) -> None:
    env = {**served.env, "GATEWAY_UPSTREAM_URL": postgrest.url}
    with run_gateway(env, cwd=tmp_path) as first, run_gateway(env, cwd=tmp_path) as second:
        answer = sign_in(first)
        assert httpx.get(f"{second}/rest/projects", headers=bearer(answer)).status_code == 200

        httpx.post(f"{first}/auth/logout", headers=bearer(answer))

        waited = wait_for(
            lambda: httpx.get(f"{second}/rest/projects", headers=bearer(answer)).status_code == 401,
            CHANGE_DEADLINE,
            "a 401 on the other gateway",
        )
    assert waited < CHANGE_DEADLINE


def test_the_gateway_recovers_when_postgrest_comes_back(
    served: Served, postgrest_bin: Path, tmp_path: Path
) -> None:
    from tests.support.postgrest import run_postgrest

    port = free_port()
    env = {**served.env, "GATEWAY_UPSTREAM_URL": f"http://127.0.0.1:{port}"}
    with run_gateway(env, cwd=tmp_path) as base:
        token = bearer(sign_in(base))
        down = httpx.get(f"{base}/rest/projects", headers=token)
        with run_postgrest(
            db_uri=served.authenticator_url,
            jwt_secret=f"@{served.keys_dir / 'jwks.json'}",
            anon_role=served.anon,
            binary=postgrest_bin,
            server_port=port,
        ):
            back = httpx.get(f"{base}/rest/projects", headers=token)

    assert down.status_code == 502
    assert back.status_code == 200


def test_postgrest_sees_the_same_request_id_the_client_gets(proxy: str) -> None:
    response = httpx.get(f"{proxy}/rest/rpc/echo_request", headers=bearer(sign_in(proxy)))

    assert response.json()["headers"]["x-request-id"] == response.headers["x-request-id"]
