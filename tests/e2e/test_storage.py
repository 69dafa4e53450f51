"""Presigned URLs through a real gateway process: POST /storage/presign and Presign at /rest."""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from gateway.storage import BucketSigner, Credentials
from tests.e2e.conftest import Served, sql
from tests.e2e.test_proxy import sign_in
from tests.support.postgrest import PostgREST
from tests.support.server import run_gateway

STORAGE_TOML = """
[buckets.files]
region = "eu-west-1"
endpoint = "http://127.0.0.1:9"
path_style = true
prefix = "orgs/{organization_id}/"
operations = { org_admin = ["get", "put", "delete"], org_client = ["get"] }
max_expires_in = 600
upload_content_types = ["application/pdf"]
"""
SIGNER = BucketSigner(
    bucket="files",
    region="eu-west-1",
    credentials=Credentials("AKIAEXAMPLE", "example-secret"),
    endpoint="http://127.0.0.1:9",
    path_style=True,
)


@pytest.fixture(scope="module")
def documents(served: Served) -> None:
    sql(
        served.url,
        "CREATE TABLE public.documents (id serial PRIMARY KEY, title text, "
        "price numeric, object_key text)",
    )
    sql(served.url, f'GRANT SELECT ON public.documents TO "{served.authenticated}"')
    # A json value nested deeper than a JSON decoder recurses, as any row may hold one.
    sql(served.url, "CREATE TABLE public.nested (object_key text, doc json)")
    sql(served.url, f'GRANT SELECT ON public.nested TO "{served.authenticated}"')
    sql(
        served.url,
        "INSERT INTO public.nested VALUES ($1, $2::json)",
        f"orgs/{served.acme}/n.pdf",
        "[" * 2000 + "]" * 2000,
    )
    sql(
        served.url,
        "INSERT INTO public.documents (title, price, object_key) VALUES "
        "('ours', 1.10000000000000000001, $1), ('theirs', 2, $2), ('none', 3, NULL)",
        f"orgs/{served.acme}/contracts/a b+c.pdf",
        f"orgs/{served.globex}/secret.pdf",
    )


@pytest.fixture
def base(
    served: Served, postgrest: PostgREST, documents: None, tmp_path: Path, request: Any
) -> Iterator[str]:
    config = tmp_path / "storage.toml"
    config.write_text(STORAGE_TOML)
    env = {
        **served.env,
        "GATEWAY_UPSTREAM_URL": postgrest.url,
        "GATEWAY_AUTH_RATE_LIMIT": "100000",
        "GATEWAY_STORAGE_CONFIG": str(config),
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "example-secret",
        # A test's own settings: @pytest.mark.parametrize("base", [{...}], indirect=True).
        **getattr(request, "param", {}),
    }
    with run_gateway(env, cwd=tmp_path) as base_url:
        yield base_url


def bearer(base: str, email: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {sign_in(base, email)['access_token']}"}


def resigned(url: str) -> str:
    """The URL the gateway's signer makes for the same key at the URL's own second."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    when = calendar.timegm(time.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ"))
    key = parts.path.removeprefix("/files/")
    from urllib.parse import unquote

    return SIGNER.url("GET", unquote(key), now=when, expires_in=int(query["X-Amz-Expires"][0]))


def test_rows_gain_a_url_for_their_own_keys_and_stay_a_postgrest_answer(
    base: str, served: Served
) -> None:
    headers = {**bearer(base, "carl@example.com"), "Prefer": "count=exact"}

    plain = httpx.get(f"{base}/rest/documents?order=id", headers=headers)
    enriched = httpx.get(
        f"{base}/rest/documents?order=id",
        headers={**headers, "Presign": "object_key; bucket=files"},
    )

    assert enriched.status_code == plain.status_code == 200
    assert enriched.headers["content-range"] == plain.headers["content-range"] == "0-2/3"
    assert int(enriched.headers["content-length"]) == len(enriched.content)
    rows = enriched.json()
    assert [r["title"] for r in rows] == ["ours", "theirs", "none"]
    # Numbers pass as PostgREST wrote them.
    assert b"1.10000000000000000001" in enriched.content
    assert rows[0]["object_key_url"] == resigned(rows[0]["object_key_url"])
    assert "/files/orgs/" in rows[0]["object_key_url"]
    assert rows[1]["object_key_url"] is None
    assert rows[2]["object_key_url"] is None
    assert "object_key_url" not in plain.json()[0]


def test_the_presign_header_never_reaches_postgrest(base: str) -> None:
    # A POST: echo_request's answer is an object, which a GET with Presign refuses to pass.
    answer = httpx.post(
        f"{base}/rest/rpc/echo_request",
        headers={**bearer(base, "ada@example.com"), "Presign": "object_key; bucket=files"},
    )

    assert answer.status_code == 200
    assert "presign" not in answer.json()["headers"]


@pytest.mark.parametrize(
    ("presign", "status", "code"),
    [("object_key", 400, "invalid_request"), ("object_key; bucket=nope", 400, "unknown_bucket")],
)
def test_a_bad_presign_header_is_refused_before_postgrest(
    base: str, presign: str, status: int, code: str
) -> None:
    answer = httpx.get(
        f"{base}/rest/documents", headers={**bearer(base, "ada@example.com"), "Presign": presign}
    )

    assert (answer.status_code, answer.json()["code"]) == (status, code)


def test_errors_pass_untouched(base: str) -> None:
    answer = httpx.get(
        f"{base}/rest/no_such_table",
        headers={**bearer(base, "ada@example.com"), "Presign": "object_key; bucket=files"},
    )

    assert answer.status_code == 404
    assert "object_key_url" not in answer.text


PRESIGN = {"Presign": "object_key; bucket=files"}


def test_an_enriched_answer_is_never_cached_and_varies_on_presign(base: str) -> None:
    headers = {**bearer(base, "carl@example.com"), **PRESIGN}

    enriched = httpx.get(f"{base}/rest/documents?order=id", headers=headers)
    head = httpx.head(f"{base}/rest/documents?order=id", headers=headers)
    plain = httpx.get(f"{base}/rest/documents?order=id", headers=bearer(base, "carl@example.com"))

    assert enriched.headers["cache-control"] == "no-store"
    assert "Presign" in [v.strip() for v in enriched.headers["vary"].split(",")]
    assert "Authorization" in enriched.headers["vary"]
    # HEAD is not enriched: it describes the answer without URLs.
    assert head.status_code == 200
    assert head.headers.get("content-length") in (None, str(len(plain.content)))
    assert "no-store" not in head.headers.get("cache-control", "")


@pytest.mark.parametrize("base", [{"GATEWAY_STORAGE_MAX_ROWS": "2"}], indirect=True)
def test_more_rows_than_gateway_storage_max_rows_get_400_too_many_rows(base: str) -> None:
    headers = {**bearer(base, "carl@example.com"), **PRESIGN}

    refused = httpx.get(f"{base}/rest/documents", headers=headers)
    paged = httpx.get(f"{base}/rest/documents?limit=2", headers=headers)
    unsigned = httpx.get(f"{base}/rest/documents", headers=bearer(base, "carl@example.com"))

    assert refused.status_code == 400
    assert refused.json()["code"] == "too_many_rows"
    assert "limit=" in refused.json()["message"]
    assert paged.status_code == 200
    assert len(paged.json()) == 2
    # Without the header the cap does not apply.
    assert len(unsigned.json()) == 3


def test_a_row_too_deeply_nested_to_decode_gets_502_presign_failed_not_500(base: str) -> None:
    answer = httpx.get(
        f"{base}/rest/nested", headers={**bearer(base, "carl@example.com"), **PRESIGN}
    )

    assert answer.status_code == 502
    assert answer.json()["code"] == "presign_failed"


def test_presign_endpoint_signs_the_callers_keys_in_order(base: str, served: Served) -> None:
    keys = [f"orgs/{served.acme}/b.pdf", f"orgs/{served.acme}/a.pdf"]

    answer = httpx.post(
        f"{base}/storage/presign",
        headers=bearer(base, "ada@example.com"),
        json={"bucket": "files", "operation": "get", "keys": keys, "expires_in": 99999},
    )

    assert answer.status_code == 200, answer.text
    urls = answer.json()["urls"]
    assert [u["key"] for u in urls] == keys
    assert all(u["method"] == "GET" and "X-Amz-Expires=600&" in u["url"] for u in urls)
    assert urls[0]["url"] == resigned(urls[0]["url"])


def test_presign_endpoint_refuses_another_organizations_key(base: str, served: Served) -> None:
    answer = httpx.post(
        f"{base}/storage/presign",
        headers=bearer(base, "eve@example.com"),
        json={
            "bucket": "files",
            "operation": "get",
            "keys": [f"orgs/{served.globex}/x", f"orgs/{served.acme}/x"],
        },
    )

    assert answer.status_code == 403
    assert answer.json()["code"] == "key_not_allowed"
    assert "keys[1]" in answer.json()["message"]


def test_presign_endpoint_needs_a_token(base: str) -> None:
    answer = httpx.post(
        f"{base}/storage/presign", json={"bucket": "files", "operation": "get", "keys": ["k"]}
    )

    assert answer.status_code == 401
