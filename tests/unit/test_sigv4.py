"""The gateway's SigV4 signer against botocore's: the same URL, byte for byte, for any input."""

from __future__ import annotations

import datetime
from contextlib import ExitStack
from functools import lru_cache
from typing import Any
from unittest import mock

import botocore.session
import pytest
from botocore.config import Config
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.storage import BucketSigner, Credentials, signing_key

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2", "eu-central-1"]
# Object keys as applications make them: spaces, unicode, and the characters whose encoding
# differs between specs (+ = / ~ and percent signs), never empty, never a control character.
KEY_ALPHABET = st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from(
    list(" +=/~%&?#!*'()éüß日本語😀-_.")
)
KEYS = st.text(KEY_ALPHABET, min_size=1, max_size=60).filter(lambda k: not k.startswith("/"))
BUCKETS = st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True)
ENDPOINTS = st.sampled_from(
    [None, "http://127.0.0.1:9000", "https://minio.example.com", "https://s3.example.com:8443"]
)
TOKENS = st.none() | st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
)
TIMES = st.integers(min_value=1_500_000_000, max_value=2_000_000_000)


@lru_cache(maxsize=256)
def botocore_client(region: str, endpoint: str | None, path_style: bool, token: str | None) -> Any:
    return botocore.session.get_session().create_client(
        "s3",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id="AKIAEXAMPLE",
        aws_secret_access_key="secret/+example",
        aws_session_token=token,
        config=Config(
            signature_version="s3v4", s3={"addressing_style": "path" if path_style else "virtual"}
        ),
    )


def frozen_clock(now: int) -> ExitStack:
    """botocore's clock stopped at ``now``: the signer and the POST policy's expiration read it."""
    clock = datetime.datetime.fromtimestamp(now, tz=datetime.UTC)
    stack = ExitStack()
    for where in ("botocore.auth.get_current_datetime", "botocore.signers.get_current_datetime"):
        stack.enter_context(mock.patch(where, return_value=clock))
    return stack


def botocore_url(
    *,
    bucket: str,
    key: str,
    region: str,
    endpoint: str | None,
    path_style: bool,
    token: str | None,
    now: int,
    expires_in: int,
    operation: str = "get_object",
    extra: dict[str, Any] | None = None,
) -> str:
    client = botocore_client(region, endpoint, path_style, token)
    with frozen_clock(now):
        url: str = client.generate_presigned_url(
            operation,
            Params={"Bucket": bucket, "Key": key, **(extra or {})},
            ExpiresIn=expires_in,
        )
    return url


def gateway_signer(
    *, bucket: str, region: str, endpoint: str | None, path_style: bool, token: str | None
) -> BucketSigner:
    # botocore signs an IP address endpoint path-style whatever the addressing style says.
    forced_path = endpoint is not None and "127.0.0.1" in endpoint
    return BucketSigner(
        bucket=bucket,
        region=region,
        credentials=Credentials("AKIAEXAMPLE", "secret/+example", token),
        endpoint=endpoint,
        path_style=path_style or forced_path,
    )


@settings(max_examples=150, deadline=None)
@given(
    bucket=BUCKETS,
    key=KEYS,
    region=st.sampled_from(REGIONS),
    endpoint=ENDPOINTS,
    path_style=st.booleans(),
    token=TOKENS,
    now=TIMES,
    expires_in=st.integers(min_value=1, max_value=604800),
    method=st.sampled_from([("GET", "get_object"), ("DELETE", "delete_object")]),
)
def test_presigned_urls_are_botocores_byte_for_byte(
    bucket: str,
    key: str,
    region: str,
    endpoint: str | None,
    path_style: bool,
    token: str | None,
    now: int,
    expires_in: int,
    method: tuple[str, str],
) -> None:
    signer = gateway_signer(
        bucket=bucket, region=region, endpoint=endpoint, path_style=path_style, token=token
    )

    ours = signer.url(method[0], key, now=now, expires_in=expires_in)

    assert ours == botocore_url(
        bucket=bucket,
        key=key,
        region=region,
        endpoint=endpoint,
        path_style=path_style,
        token=token,
        now=now,
        expires_in=expires_in,
        operation=method[1],
    )


@settings(max_examples=40, deadline=None)
@given(
    key=KEYS,
    region=st.sampled_from(REGIONS),
    path_style=st.booleans(),
    token=TOKENS,
    now=TIMES,
    content_type=st.sampled_from(["image/png", "application/pdf", "text/plain; charset=utf-8"]),
    length=st.integers(min_value=0, max_value=5 * 1024**3),
)
def test_a_put_with_signed_type_and_length_is_botocores(
    key: str,
    region: str,
    path_style: bool,
    token: str | None,
    now: int,
    content_type: str,
    length: int,
) -> None:
    signer = gateway_signer(
        bucket="uploads", region=region, endpoint=None, path_style=path_style, token=token
    )
    headers = (("content-type", content_type), ("content-length", str(length)))

    ours = signer.url("PUT", key, now=now, expires_in=600, headers=headers)

    assert ours == botocore_url(
        bucket="uploads",
        key=key,
        region=region,
        endpoint=None,
        path_style=path_style,
        token=token,
        now=now,
        expires_in=600,
        operation="put_object",
        extra={"ContentType": content_type, "ContentLength": length},
    )


@settings(max_examples=60, deadline=None)
@given(
    bucket=BUCKETS,
    region=st.sampled_from(REGIONS),
    endpoint=ENDPOINTS,
    path_style=st.booleans(),
    token=TOKENS,
    now=TIMES,
)
def test_a_presigned_head_of_the_bucket_is_botocores(
    bucket: str, region: str, endpoint: str | None, path_style: bool, token: str | None, now: int
) -> None:
    signer = gateway_signer(
        bucket=bucket, region=region, endpoint=endpoint, path_style=path_style, token=token
    )
    client = botocore_client(region, endpoint, path_style, token)

    with frozen_clock(now):
        theirs = client.generate_presigned_url(
            "head_bucket", Params={"Bucket": bucket}, ExpiresIn=30
        )

    assert signer.head_bucket_url(now=now, expires_in=30) == theirs


def test_one_signer_prepared_once_signs_each_key_as_a_single_url_would() -> None:
    signer = gateway_signer(
        bucket="files", region="eu-west-1", endpoint=None, path_style=False, token="t"
    )
    prepared = signer.prepare("GET", now=1_700_000_000, expires_in=60)

    keys = ["a", "b c", "d/é"]

    assert [signer.sign(prepared, key) for key in keys] == [
        signer.url("GET", key, now=1_700_000_000, expires_in=60) for key in keys
    ]


def test_a_prepared_signature_never_shows_the_days_signing_key() -> None:
    signer = gateway_signer(
        bucket="files", region="eu-west-1", endpoint=None, path_style=False, token="t"
    )
    prepared = signer.prepare("GET", now=1_700_000_000, expires_in=60)

    assert prepared.key.hex() not in repr(prepared)
    assert repr(prepared.key) not in repr(prepared)


def test_the_signing_key_is_the_aws_documented_one() -> None:
    # The example of AWS's "Deriving the signing key" documentation page.
    key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam")

    assert key.hex() == "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"


@pytest.mark.parametrize(
    "endpoint", ["https://minio.example.com:443", "http://minio.example.com:80"]
)
def test_the_default_port_is_left_out_of_the_signed_host(endpoint: str) -> None:
    signer = gateway_signer(
        bucket="files", region="eu-west-1", endpoint=endpoint, path_style=True, token=None
    )

    ours = signer.url("GET", "k", now=1_700_000_000, expires_in=60)

    assert ours == botocore_url(
        bucket="files",
        key="k",
        region="eu-west-1",
        endpoint=endpoint,
        path_style=True,
        token=None,
        now=1_700_000_000,
        expires_in=60,
    )


@settings(max_examples=60, deadline=None)
@given(
    key=KEYS,
    bucket=BUCKETS,
    region=st.sampled_from(REGIONS),
    endpoint=ENDPOINTS,
    path_style=st.booleans(),
    token=TOKENS,
    now=TIMES,
    expires_in=st.integers(min_value=1, max_value=604800),
    content_type=st.sampled_from(["image/png", "application/pdf", "text/plain; charset=utf-8"]),
    max_bytes=st.integers(min_value=1, max_value=5 * 1024**3),
)
def test_a_presigned_post_is_botocores_url_fields_and_policy(
    key: str,
    bucket: str,
    region: str,
    endpoint: str | None,
    path_style: bool,
    token: str | None,
    now: int,
    expires_in: int,
    content_type: str,
    max_bytes: int,
) -> None:
    signer = gateway_signer(
        bucket=bucket, region=region, endpoint=endpoint, path_style=path_style, token=token
    )

    url, fields = signer.post(
        key, now=now, expires_in=expires_in, content_type=content_type, max_bytes=max_bytes
    )

    client = botocore_client(region, endpoint, path_style, token)
    with frozen_clock(now):
        theirs = client.generate_presigned_post(
            bucket,
            key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 0, max_bytes]],
            ExpiresIn=expires_in,
        )
    assert (url, list(fields.items())) == (theirs["url"], list(theirs["fields"].items()))


def test_the_aws_documented_presigned_url_example() -> None:
    # "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)", the example.
    signer = BucketSigner(
        bucket="examplebucket",
        region="us-east-1",
        credentials=Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    )

    url = signer.url("GET", "test.txt", now=1369353600, expires_in=86400)

    assert url.endswith(
        "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
