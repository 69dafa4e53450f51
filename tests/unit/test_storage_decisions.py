"""Who gets a URL for which key, and what a Presign'd PostgREST answer becomes. Pure logic."""

from __future__ import annotations

import json
import unicodedata

import pytest

from gateway.errors import GatewayError
from gateway.storage import (
    Bucket,
    BucketSigner,
    Credentials,
    Enrichment,
    Grantee,
    StorageConfig,
    check_keys,
    enrich,
    enrichment_for,
    presign,
)

NOW = 1_700_000_000
PHOTOS = Bucket(
    name="photos",
    region="eu-west-1",
    prefix="orgs/{organization_id}/",
    operations={"org_admin": frozenset({"get", "put", "delete"}), "org_client": frozenset({"get"})},
    max_expires_in=600,
    upload_content_types=frozenset({"image/png"}),
    upload_max_bytes=1024,
    signer=BucketSigner(
        bucket="photos", region="eu-west-1", credentials=Credentials("AKIAEXAMPLE", "secret")
    ),
)
STORAGE = StorageConfig(buckets={"photos": PHOTOS}, max_batch=3)
ADMIN_OF_1 = Grantee(user_id=10, organization_id=1, role="org_admin")


def refusal(**request: object) -> GatewayError:
    arguments: dict[str, object] = {"bucket": "photos", "operation": "get", **request}
    with pytest.raises(GatewayError) as refused:
        presign(STORAGE, grantee=arguments.pop("grantee", ADMIN_OF_1), now=NOW, **arguments)  # type: ignore[arg-type]
    return refused.value


def test_urls_come_back_in_the_order_of_the_keys_with_their_expiry() -> None:
    urls = presign(
        STORAGE,
        grantee=ADMIN_OF_1,
        bucket="photos",
        operation="get",
        keys=["orgs/1/b", "orgs/1/a"],
        now=NOW,
    )

    assert [u.key for u in urls] == ["orgs/1/b", "orgs/1/a"]
    assert urls[0].url.startswith("https://photos.s3.eu-west-1.amazonaws.com/orgs/1/b?")
    assert urls[0].method == "GET"
    assert urls[0].fields is None
    # The default 900 seconds, capped at the bucket's 600.
    assert urls[0].expires_at == "2023-11-14T22:23:20Z"
    assert "X-Amz-Expires=600&" in urls[0].url


def test_an_upload_is_a_post_policy_bound_to_the_key_type_and_size() -> None:
    [upload] = presign(
        STORAGE,
        grantee=ADMIN_OF_1,
        bucket="photos",
        operation="put",
        keys=["orgs/1/a.png"],
        content_type="image/png",
        now=NOW,
    )

    assert upload.method == "POST"
    assert upload.fields is not None
    import base64

    policy = json.loads(base64.b64decode(upload.fields["policy"]))
    assert {"key": "orgs/1/a.png"} in policy["conditions"]
    assert {"Content-Type": "image/png"} in policy["conditions"]
    assert ["content-length-range", 0, 1024] in policy["conditions"]


@pytest.mark.parametrize(
    ("request_", "status", "code", "says"),
    [
        ({"bucket": "nope", "keys": ["orgs/1/a"]}, 400, "unknown_bucket", "No such bucket"),
        ({"operation": "list", "keys": ["orgs/1/a"]}, 400, "invalid_request", "operation"),
        (
            {"operation": "delete", "keys": ["orgs/1/a"], "grantee": Grantee(10, 1, "org_client")},
            403,
            "operation_not_allowed",
            "delete",
        ),
        ({"keys": ["orgs/1/a"], "grantee": Grantee(10, None, None)}, 403, "no_organization", ""),
        ({"keys": []}, 400, "invalid_request", "at least one"),
        ({"keys": ["orgs/1/a"] * 4}, 400, "invalid_request", "at most 3"),
        ({"keys": ["orgs/1/a"], "expires_in": 0}, 400, "invalid_request", "expires_in"),
        ({"operation": "put", "keys": ["orgs/1/a"]}, 400, "invalid_request", "content_type"),
        (
            {"operation": "put", "keys": ["orgs/1/a"], "content_type": "text/html"},
            400,
            "invalid_request",
            "image/png",
        ),
        ({"keys": ["orgs/1/a", "orgs/2/a", "orgs/1/\x00"]}, 403, "key_not_allowed", "keys[1]"),
        ({"keys": ["orgs/1/a", "orgs/1/../2/a", "orgs/2/a"]}, 400, "invalid_key", "keys[1]"),
        ({"keys": ["orgs/1/"]}, 403, "key_not_allowed", "keys[0]"),
        ({"keys": [7]}, 400, "invalid_key", "keys[0] is not a string"),
        # S3 substitutes ${filename} in a POST upload's key after checking the policy.
        (
            {
                "operation": "put",
                "keys": ["orgs/1/a", "orgs/1/${filename}"],
                "content_type": "image/png",
            },
            400,
            "invalid_key",
            "keys[1]",
        ),
        (
            {"operation": "put", "keys": ["orgs/1/$x"], "content_type": "image/png"},
            400,
            "invalid_key",
            "'$'",
        ),
    ],
)
def test_a_bad_request_is_refused_whole_naming_the_first_bad_key(
    request_: dict[str, object], status: int, code: str, says: str
) -> None:
    refused = refusal(**request_)

    assert (refused.status, refused.code) == (status, code)
    assert says in refused.message


# Org 2's object "orgs/2/report.pdf", spelled every way a member of org 1 might try.
SPELLINGS = [
    "orgs/2/report.pdf",
    "/orgs/2/report.pdf",
    "orgs//2/report.pdf",
    "./orgs/2/report.pdf",
    "orgs/1/../2/report.pdf",
    "orgs/1/./../2/report.pdf",
    "orgs/1/..",
    "orgs%2F2/report.pdf",
    "orgs/1%2F..%2F2/report.pdf",
    "orgs/%31/../2/report.pdf",
    "orgs/\uff11/../2/report.pdf",
    "orgs/1/\u2024\u2024/2/report.pdf",
    "orgs/1/\x00/../2/report.pdf",
    "orgs/1\n/2/report.pdf",
    "orgs/1\\..\\2\\report.pdf",
    *(
        unicodedata.normalize(form, "orgs/\uff12/report.pdf")
        for form in ("NFC", "NFD", "NFKC", "NFKD")
    ),
]


@pytest.mark.parametrize("key", SPELLINGS)
def test_no_spelling_of_another_organizations_key_is_signed(key: str) -> None:
    refused: GatewayError | None = None
    try:
        urls = presign(
            STORAGE, grantee=ADMIN_OF_1, bucket="photos", operation="get", keys=[key], now=NOW
        )
    except GatewayError as error:
        refused = error
    if refused is not None:
        assert refused.status in (400, 403)
        return
    # Signed only if it is literally a key under orgs/1/: S3 takes the path as it is, and the
    # path signed is the percent-encoding of exactly that key.
    assert key.startswith("orgs/1/")
    assert "/../" not in key
    assert "/orgs/1/" in urls[0].url
    assert "/orgs/2/" not in urls[0].url


def test_check_keys_passes_keys_under_the_prefix_untouched() -> None:
    keys = ["orgs/1/a b", "orgs/1/é/ü", "orgs/1/a+b=c~d", "orgs/1/..a", "orgs/1/dir/", "orgs/1/$x"]

    assert check_keys(keys, "orgs/1/") == keys


def enrichment(column: str = "object_key") -> Enrichment:
    claims = {"user": {"user_id": 10, "organization_id": 1, "role": "org_client"}}
    return enrichment_for(f"{column}; bucket=photos".encode(), STORAGE, claims=claims)


def test_each_row_gains_a_url_for_its_own_keys_and_null_for_the_rest() -> None:
    body = (
        json.dumps(
            [
                {"id": 1, "object_key": "orgs/1/a.png", "price": 1.10000000000000000001},
                {"id": 2, "object_key": "orgs/2/b.png"},
                {"id": 3, "object_key": None},
                {"id": 4, "object_key": 17},
                {"id": 5},
                {},
            ],
            separators=(",", ":"),
        )
        .encode()
        .replace(b"1.1}", b"1.10000000000000000001}")
    )

    rows = json.loads(enrich(body, enrichment(), now=NOW) or b"", parse_float=str)

    assert rows[0]["object_key_url"] == PHOTOS.signer.url(
        "GET", "orgs/1/a.png", now=NOW, expires_in=600
    )
    assert rows[0]["price"] == "1.10000000000000000001"
    assert [row["object_key_url"] for row in rows[1:]] == [None] * 5
    assert [row.get("id") for row in rows] == [1, 2, 3, 4, 5, None]


def test_a_row_that_already_has_the_url_column_gets_the_gateways_value() -> None:
    body = b'[{"object_key":"orgs/1/a","object_key_url":"https://evil.example/"}]'

    [row] = json.loads(enrich(body, enrichment(), now=NOW) or b"")

    assert row["object_key_url"].startswith("https://photos.s3.eu-west-1.amazonaws.com/orgs/1/a?")


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (b"object_key", "invalid_request"),
        (b"object_key; bucket=other", "unknown_bucket"),
        (b"a-b; bucket=photos", "invalid_request"),
        (b"object_key; bucket=photos, x; bucket=photos", "invalid_request"),
    ],
)
def test_a_bad_presign_header_is_refused(header: bytes, code: str) -> None:
    with pytest.raises(GatewayError) as refused:
        enrichment_for(header, STORAGE, claims={"user": {"user_id": 1, "organization_id": 1}})

    assert refused.value.code == code


def test_the_header_needs_a_role_that_may_get() -> None:
    claims = {"user": {"user_id": 10, "organization_id": 1, "role": None}}

    with pytest.raises(GatewayError) as refused:
        enrichment_for(b"object_key; bucket=photos", STORAGE, claims=claims)

    assert refused.value.code == "operation_not_allowed"


def upload_type(content_type: str, allowed: frozenset[str] | None = None) -> str | GatewayError:
    import dataclasses

    bucket = dataclasses.replace(PHOTOS, upload_content_types=allowed)
    storage = StorageConfig(buckets={"photos": bucket}, max_batch=3)
    try:
        [upload] = presign(
            storage,
            grantee=ADMIN_OF_1,
            bucket="photos",
            operation="put",
            keys=["orgs/1/a"],
            content_type=content_type,
            now=NOW,
        )
    except GatewayError as refused:
        return refused
    assert upload.fields is not None
    return upload.fields["Content-Type"]


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html",
        "TEXT/HTML; charset=utf-8",
        "application/xhtml+xml",
        "image/svg+xml",
        "application/atom+xml",
        "text/xml",
        "application/xml",
        "text/javascript",
        "application/javascript",
        "application/x-javascript",
        "application/ecmascript",
        "text/xsl",
        "multipart/x-mixed-replace",
    ],
)
def test_a_type_a_browser_runs_is_refused_unless_the_bucket_lists_it(content_type: str) -> None:
    refused = upload_type(content_type)

    assert isinstance(refused, GatewayError)
    assert (refused.status, refused.code) == (400, "invalid_request")
    assert "upload_content_types" in refused.message
    base = content_type.split(";")[0].lower()
    assert upload_type(base, allowed=frozenset({base})) == base


@pytest.mark.parametrize(
    "content_type", ["html", "text/", "/html", "text/html x", "text/plain;", "a/b\r\nX: y", "é/b"]
)
def test_an_upload_type_that_is_no_media_type_is_refused(content_type: str) -> None:
    refused = upload_type(content_type)

    assert isinstance(refused, GatewayError)
    assert refused.code == "invalid_request"


@pytest.mark.parametrize(
    "content_type", ["image/png", "application/pdf", "text/plain; charset=utf-8", "video/mp4"]
)
def test_a_passive_upload_type_is_signed_as_given(content_type: str) -> None:
    assert upload_type(content_type) == content_type
