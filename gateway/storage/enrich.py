"""The ``Presign`` header at ``/rest``: a GET URL beside each row's object key. Pure logic."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgspec

from gateway.storage._errors import (
    InvalidPresignRequest,
    NoOrganization,
    OperationNotAllowed,
    UnknownBucket,
)
from gateway.storage.config import Bucket, StorageConfig
from gateway.storage.keys import signable_within
from gateway.storage.presign import DEFAULT_EXPIRES_IN

# A column name as PostgREST's select= renames allow it, safe to put in a JSON key unescaped.
_COLUMN = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
_HEADER = re.compile(
    rf"\s*({_COLUMN})\s*;\s*bucket\s*=\s*([a-z0-9][a-z0-9.-]{{1,61}}[a-z0-9])"
    r"(?:\s*;\s*expires_in\s*=\s*([0-9]{1,7}))?\s*"
)
_ROWS = msgspec.json.Decoder(list[msgspec.Raw])
_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])


@dataclass(frozen=True, slots=True)
class Enrichment:
    """What one request's answer gets: ``<column>_url`` from ``column``, within ``prefix``."""

    column: str
    bucket: Bucket
    prefix: str
    expires_in: int


def enrichment_for(value: bytes, storage: StorageConfig, *, claims: dict[str, Any]) -> Enrichment:
    """The header ``Presign: <column>; bucket=<name>[; expires_in=<s>]`` read for a verified
    caller (the access token's claims), or the error refusing the request before it goes up."""
    match = _HEADER.fullmatch(value.decode("latin-1"))
    if match is None:
        raise InvalidPresignRequest(
            "The Presign header is '<column>; bucket=<name>', optionally '; expires_in=<seconds>'."
        )
    column, name, expires = match.groups()
    bucket = storage.buckets.get(name)
    if bucket is None:
        raise UnknownBucket("No such bucket is configured.")
    user = claims.get("user")
    organization_id = user.get("organization_id") if isinstance(user, dict) else None
    user_id = user.get("user_id") if isinstance(user, dict) else None
    if not isinstance(organization_id, int) or not isinstance(user_id, int):
        raise NoOrganization("Presigned URLs are for a caller acting in an organization.")
    if not bucket.allows(user.get("role") if isinstance(user, dict) else None, "get"):
        raise OperationNotAllowed("Your role may not get objects in this bucket.")
    lifetime = min(int(expires) if expires else DEFAULT_EXPIRES_IN, bucket.max_expires_in)
    if lifetime < 1:
        raise InvalidPresignRequest("expires_in must be a positive number of seconds.")
    return Enrichment(
        column=column,
        bucket=bucket,
        prefix=bucket.prefix_for(organization_id=organization_id, user_id=user_id),
        expires_in=lifetime,
    )


@lru_cache(maxsize=256)
def _key_reader(column: str) -> msgspec.json.Decoder[list[Any]]:
    # Decodes only the key column and whether the row already has a ``<column>_url``: every
    # other field is skipped, not built into Python objects.
    row = msgspec.defstruct(
        "PresignRow",
        [("key", Any, None), ("existing", Any, msgspec.UNSET)],
        rename={"key": column, "existing": f"{column}_url"},
        array_like=False,
    )
    return msgspec.json.Decoder(list[row])  # type: ignore[valid-type]


def enrich(body: bytes, enrichment: Enrichment, *, now: int | None = None) -> bytes | None:
    """The JSON array answer with ``<column>_url`` added to each row; None to pass it untouched
    (not JSON, not an array, or not an array of objects).

    Each row's bytes are kept as PostgREST wrote them (numbers keep their precision) and the URL
    spliced in before the closing brace; only the key column is decoded.
    """
    try:
        rows = _ROWS.decode(body)
        keys = _key_reader(enrichment.column).decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    signer = enrichment.bucket.signer
    prepared = signer.prepare(
        "GET", now=int(time.time()) if now is None else now, expires_in=enrichment.expires_in
    )
    prefix = enrichment.prefix
    name = f'"{enrichment.column}_url":'.encode()
    parts: list[bytes | memoryview] = [b"["]
    for index, (raw, row) in enumerate(zip(rows, keys, strict=True)):
        key = row.key
        # URLs are ASCII without quotes or backslashes (everything else is percent-encoded),
        # so the JSON string is the URL in quotes.
        url = (
            b'"' + signer.sign(prepared, key).encode() + b'"'
            if signable_within(key, prefix)
            else b"null"
        )
        if index:
            parts.append(b",")
        if row.existing is not msgspec.UNSET:
            parts.append(_replaced(raw, enrichment.column + "_url", url))
            continue
        # A view without the closing brace: joined below without a copy of its own.
        row_bytes = memoryview(raw)
        parts.append(row_bytes[:-1])
        if len(row_bytes) > 8 or bytes(row_bytes[1:-1]).strip():
            parts.append(b",")
        parts.append(name)
        parts.append(url)
        parts.append(b"}")
    parts.append(b"]")
    return b"".join(parts)


def _replaced(raw: msgspec.Raw, field: str, url: bytes) -> bytes:
    # A select= that already names the URL column: the gateway's value wins, in its place.
    row = _OBJECT.decode(raw)
    row[field] = msgspec.Raw(url)
    return msgspec.json.encode(row)
