"""Presigned URLs: µs per URL, the gateway's signer beside botocore's, and a 10,000-row answer."""

from __future__ import annotations

import json
import time

import botocore.session
from botocore.config import Config

from gateway.storage import Bucket, BucketSigner, Credentials, Enrichment, enrich

N = 20_000
ROWS = 10_000


def main() -> None:
    credentials = Credentials("AKIAEXAMPLE", "example-secret", "example-session-token")
    signer = BucketSigner(bucket="files", region="eu-west-1", credentials=credentials)
    keys = [f"orgs/1517075599167650/contracts/{i}/scan é.pdf" for i in range(N)]
    now = int(time.time())

    started = time.perf_counter()
    for key in keys:
        signer.url("GET", key, now=now, expires_in=900)
    one_by_one = (time.perf_counter() - started) / N * 1e6

    started = time.perf_counter()
    prepared = signer.prepare("GET", now=now, expires_in=900)
    for key in keys:
        signer.sign(prepared, key)
    batched = (time.perf_counter() - started) / N * 1e6

    client = botocore.session.get_session().create_client(
        "s3",
        region_name="eu-west-1",
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        aws_session_token=credentials.session_token,
        config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}),
    )
    sample = keys[:2000]
    started = time.perf_counter()
    for key in sample:
        client.generate_presigned_url(
            "get_object", Params={"Bucket": "files", "Key": key}, ExpiresIn=900
        )
    boto = (time.perf_counter() - started) / len(sample) * 1e6

    bucket = Bucket(
        name="files",
        region="eu-west-1",
        prefix="orgs/{organization_id}/",
        operations={},
        max_expires_in=3600,
        upload_content_types=None,
        upload_max_bytes=1,
        signer=signer,
    )
    rows = [
        {"id": i, "title": f"contract {i}", "price": "12.50", "object_key": keys[i]}
        for i in range(ROWS)
    ]
    body = json.dumps(rows, separators=(",", ":")).encode()
    enrichment = Enrichment("object_key", bucket, "orgs/1517075599167650/", 900, max_rows=ROWS)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        enrich(body, enrichment)
        timings.append(time.perf_counter() - started)

    print(f"gateway signer, one URL per call: {one_by_one:6.1f} µs per URL")
    print(f"gateway signer, prepared once:    {batched:6.1f} µs per URL")
    print(f"botocore generate_presigned_url:  {boto:6.1f} µs per URL")
    print(f"{ROWS} rows enriched (best of 5):  {min(timings) * 1000:6.1f} ms ({len(body)} bytes)")


if __name__ == "__main__":
    main()
