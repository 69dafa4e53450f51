"""``gateway storage check``: the configuration, its credentials, and a signed HEAD per bucket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

import aiohttp

from gateway.storage._errors import StorageConfigError
from gateway.storage.config import Bucket, StorageConfig

HEAD_TIMEOUT = 5.0
# What S3 answers a HeadBucket with, and what it means for the operator.
_STATUS_MEANS = {
    301: "is in another region than the configured one",
    400: "refused the request (is the region right?)",
    403: "refused these credentials (no access to the bucket, a wrong secret, or a clock "
    "more than 15 minutes off)",
    404: "does not exist",
}


@dataclass(frozen=True, slots=True)
class StorageCheck:
    name: str
    ok: bool
    detail: str


async def check_storage(
    load: Callable[[], StorageConfig | None], *, head_timeout: float = HEAD_TIMEOUT
) -> list[StorageCheck]:
    """Every check, in order: the file (with its credentials) is read by ``load``, then each
    bucket gets a HEAD signed by its own signer. Unreachable is a failed check, not an error."""
    try:
        storage = load()
    except StorageConfigError as exc:
        return [StorageCheck("config", False, exc.message)]
    if storage is None:
        return [StorageCheck("config", False, "GATEWAY_STORAGE_CONFIG is not set")]
    checks = [
        StorageCheck(
            "config", True, f"{len(storage.buckets)} bucket(s), credentials present for each"
        )
    ]
    client_timeout = aiohttp.ClientTimeout(total=head_timeout)
    async with aiohttp.ClientSession(timeout=client_timeout) as session:
        heads = [_head(session, bucket, head_timeout) for bucket in storage.buckets.values()]
        checks += await asyncio.gather(*heads)
    return checks


async def _head(session: aiohttp.ClientSession, bucket: Bucket, limit: float) -> StorageCheck:
    name = f"bucket {bucket.name}"
    url = bucket.signer.head_bucket_url(now=int(time.time()), expires_in=60)
    try:
        async with session.head(url, allow_redirects=False) as answer:
            status = answer.status
    except TimeoutError:
        return StorageCheck(name, False, f"unreachable: no answer within {limit:g} s")
    except aiohttp.ClientError as exc:
        return StorageCheck(name, False, f"unreachable: {type(exc).__name__}")
    if status == 200:
        return StorageCheck(name, True, "reachable; these credentials may use it")
    means = _STATUS_MEANS.get(status, "answered unexpectedly")
    return StorageCheck(name, False, f"HEAD answered {status}: the bucket {means}")


def checks_as_json(checks: list[StorageCheck]) -> Mapping[str, object]:
    return {"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}


__all__ = ["HEAD_TIMEOUT", "StorageCheck", "check_storage", "checks_as_json"]
