"""Presigned URLs against a real S3 server that checks SigV4: what the gateway signs works there,
and what anyone changes in a URL is refused there.

The server (tests/support/s3.py) computes every query-string signature, so a tampered, expired
or re-targeted URL gets its 403 from S3 itself, not from an imitation of S3's checks. It does not
check POST policies (docs/storage.md): the policy's conditions are tested against botocore's in
tests/unit/test_sigv4.py, and uploads here test that the signed form is accepted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.storage import BucketSigner, Credentials
from tests.e2e.conftest import Served, sql
from tests.e2e.test_proxy import sign_in
from tests.support.postgrest import run_postgrest
from tests.support.s3 import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, S3Server, run_s3_server
from tests.support.server import run_gateway
from tests.support.waiting import wait_for

BUCKET = "files"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with run_s3_server(BUCKET) as server:
        yield server


@pytest.fixture(scope="module")
def owner(s3: S3Server) -> BucketSigner:
    """The bucket's owner, for putting the objects a test starts from straight into S3."""
    return BucketSigner(
        bucket=BUCKET,
        region=REGION,
        credentials=Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY),
        endpoint=s3.url,
        path_style=True,
    )


@pytest.fixture(scope="module")
def base(
    served: Served, s3: S3Server, postgrest_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    sql(served.url, "CREATE TABLE public.files (id int PRIMARY KEY, object_key text)")
    sql(served.url, f'GRANT SELECT ON public.files TO "{served.authenticated}"')
    folder = tmp_path_factory.mktemp("gateway-s3")
    config = folder / "storage.toml"
    config.write_text(
        f"""
[buckets.{BUCKET}]
region = "{REGION}"
endpoint = "{s3.url}"
path_style = true
prefix = "orgs/{{organization_id}}/"
operations = {{ org_admin = ["get", "put", "delete"], org_client = ["get"] }}
max_expires_in = 600
upload_content_types = ["application/pdf"]
upload_max_bytes = 1024
"""
    )
    env = {
        **served.env,
        "GATEWAY_AUTH_RATE_LIMIT": "100000",
        "GATEWAY_STORAGE_CONFIG": str(config),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    }
    with ExitStack() as stack:
        postgrest = stack.enter_context(
            run_postgrest(
                db_uri=served.authenticator_url,
                jwt_secret=f"@{served.keys_dir / 'jwks.json'}",
                anon_role=served.anon,
                binary=postgrest_bin,
            )
        )
        env["GATEWAY_UPSTREAM_URL"] = postgrest.url
        yield stack.enter_context(run_gateway(env, cwd=folder))


def put_object(owner: BucketSigner, key: str, body: bytes) -> None:
    url = owner.url("PUT", key, now=int(time.time()), expires_in=60)
    assert httpx.put(url, content=body).status_code == 200


def object_body(owner: BucketSigner, key: str) -> bytes | None:
    answer = httpx.get(owner.url("GET", key, now=int(time.time()), expires_in=60))
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    return answer.content


def presigned(base: str, email: str, **request: Any) -> httpx.Response:
    token = sign_in(base, email)["access_token"]
    return httpx.post(
        f"{base}/storage/presign",
        headers={"Authorization": f"Bearer {token}"},
        json={"bucket": BUCKET, **request},
    )


def one_url(base: str, email: str, **request: Any) -> dict[str, Any]:
    answer = presigned(base, email, **request)
    assert answer.status_code == 200, answer.text
    url: dict[str, Any] = answer.json()["urls"][0]
    return url


def refusal(answer: httpx.Response) -> str:
    """S3's error code, from its XML answer."""
    assert answer.status_code == 403, answer.text
    return answer.text.split("<Code>", 1)[1].split("</Code>", 1)[0]


def test_a_get_url_from_the_endpoint_downloads_the_object(
    base: str, served: Served, owner: BucketSigner
) -> None:
    key = f"orgs/{served.acme}/reports/q3 final+v2.pdf"
    put_object(owner, key, b"%PDF q3")

    url = one_url(base, "carl@example.com", operation="get", keys=[key])

    assert httpx.get(url["url"]).content == b"%PDF q3"


def test_presign_header_urls_download_each_rows_own_object(
    base: str, served: Served, owner: BucketSigner
) -> None:
    ours, theirs = f"orgs/{served.acme}/rows/1.pdf", f"orgs/{served.globex}/rows/2.pdf"
    put_object(owner, ours, b"acme row")
    put_object(owner, theirs, b"globex row")
    sql(served.url, "INSERT INTO public.files VALUES (1, $1), (2, $2)", ours, theirs)
    token = sign_in(base, "carl@example.com")["access_token"]

    rows = httpx.get(
        f"{base}/rest/files?order=id",
        headers={"Authorization": f"Bearer {token}", "Presign": "object_key; bucket=files"},
    ).json()

    assert httpx.get(rows[0]["object_key_url"]).content == b"acme row"
    # The row is visible (no row-level security on this table), its object's URL is not.
    assert rows[1]["object_key_url"] is None


def test_an_upload_with_the_presigned_post_lands_at_its_key(
    base: str, served: Served, owner: BucketSigner
) -> None:
    key = f"orgs/{served.acme}/uploads/contract.pdf"

    upload = one_url(
        base, "ada@example.com", operation="put", keys=[key], content_type="application/pdf"
    )
    answer = httpx.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("contract.pdf", b"%PDF signed", "application/pdf")},
    )

    assert (upload["method"], answer.status_code) == ("POST", 204), answer.text
    assert object_body(owner, key) == b"%PDF signed"


def test_a_presigned_delete_removes_the_object(
    base: str, served: Served, owner: BucketSigner
) -> None:
    key = f"orgs/{served.acme}/old.pdf"
    put_object(owner, key, b"old")

    url = one_url(base, "ada@example.com", operation="delete", keys=[key])

    assert (url["method"], httpx.delete(url["url"]).status_code) == ("DELETE", 204)
    assert object_body(owner, key) is None


def test_a_url_changed_in_any_signed_part_is_refused_by_s3(
    base: str, served: Served, owner: BucketSigner
) -> None:
    mine, other = f"orgs/{served.acme}/mine.pdf", f"orgs/{served.acme}/other.pdf"
    theirs = f"orgs/{served.globex}/mine.pdf"
    for key in (mine, other, theirs):
        put_object(owner, key, b"object")
    url = one_url(base, "ada@example.com", operation="get", keys=[mine])["url"]
    signature = url.rsplit("=", 1)[1]
    flipped = url[: -len(signature)] + ("0" if signature[0] != "0" else "1") + signature[1:]

    assert httpx.get(url).status_code == 200
    assert refusal(httpx.get(flipped)) == "SignatureDoesNotMatch"
    # The path is signed: neither another key of the caller's nor another organization's.
    assert refusal(httpx.get(url.replace("/mine.pdf", "/other.pdf"))) == "SignatureDoesNotMatch"
    retargeted = url.replace(f"/orgs/{served.acme}/", f"/orgs/{served.globex}/")
    assert refusal(httpx.get(retargeted)) == "SignatureDoesNotMatch"
    # So are the lifetime and the method.
    longer = url.replace("X-Amz-Expires=600&", "X-Amz-Expires=3600&")
    assert longer != url
    assert refusal(httpx.get(longer)) == "SignatureDoesNotMatch"
    assert refusal(httpx.delete(url)) == "SignatureDoesNotMatch"
    assert object_body(owner, mine) == b"object"


def test_an_expired_url_is_refused_by_s3(base: str, served: Served, owner: BucketSigner) -> None:
    key = f"orgs/{served.acme}/brief.pdf"
    put_object(owner, key, b"brief")

    url = one_url(base, "carl@example.com", operation="get", keys=[key], expires_in=3)["url"]
    # Valid while it lasts, so the refusal below is the expiry and nothing else.
    assert httpx.get(url).content == b"brief"

    def refused() -> bool:
        answer = httpx.get(url)
        return answer.status_code == 403 and refusal(answer) == "AccessDenied"

    wait_for(refused, 10, "the server refusing the URL after its 3 s")


@pytest.mark.parametrize(
    ("key", "status", "code"),
    [
        ("orgs/{acme}/board.pdf", 403, "key_not_allowed"),
        ("orgs/{globex}/../{acme}/board.pdf", 400, "invalid_key"),
    ],
)
def test_no_spelling_of_another_organizations_key_gets_a_url(
    base: str, served: Served, key: str, status: int, code: str
) -> None:
    spelled = key.format(acme=served.acme, globex=served.globex)

    answer = presigned(base, "eve@example.com", operation="get", keys=[spelled])

    assert (answer.status_code, answer.json()["code"]) == (status, code)


def test_a_client_role_gets_no_upload_or_delete_url(base: str, served: Served) -> None:
    key = f"orgs/{served.acme}/x.pdf"

    for request in (
        {"operation": "put", "content_type": "application/pdf"},
        {"operation": "delete"},
    ):
        answer = presigned(base, "carl@example.com", keys=[key], **request)
        assert (answer.status_code, answer.json()["code"]) == (403, "operation_not_allowed")
