"""The ``Presign`` header at ``/rest``: a GET URL beside each row's object key. Pure logic."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgspec

from gateway.storage._errors import (
    AnswerTooLarge,
    InvalidPresignRequest,
    NoOrganization,
    OperationNotAllowed,
    PresignFailed,
    TooManyRows,
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
_STRING = msgspec.json.Decoder(str)
_NO_KEY = msgspec.Raw(b"null")
_WHITESPACE = b" \t\r\n"
_OPEN_BRACE = ord("{")
# The most an enriched answer may grow to: the input cap (16 MiB, see the proxy's _presign.py)
# plus a URL of up to ~1.6 KiB (a session token in it) for each of 10,000 rows.
MAX_ENRICHED_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Enrichment:
    """What one request's answer gets: ``<column>_url`` from ``column``, within ``prefix``."""

    column: str
    bucket: Bucket
    prefix: str
    expires_in: int
    # GATEWAY_STORAGE_MAX_ROWS: an answer with more rows is refused, not enriched.
    max_rows: int


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
        max_rows=storage.max_rows,
    )


@lru_cache(maxsize=256)
def _key_reader(column: str) -> msgspec.json.Decoder[list[Any]]:
    # Decodes only the key column and whether the row already has a ``<column>_url``, both as
    # Raw: every other field is skipped, and a key column of any JSON value costs no objects.
    row = msgspec.defstruct(
        "PresignRow",
        [("key", msgspec.Raw, _NO_KEY), ("existing", msgspec.Raw, msgspec.UNSET)],
        rename={"key": column, "existing": f"{column}_url"},
        array_like=False,
    )
    return msgspec.json.Decoder(list[row])  # type: ignore[valid-type]


def enrich(
    body: bytes | bytearray,
    enrichment: Enrichment,
    *,
    now: int | None = None,
    max_bytes: int = MAX_ENRICHED_BYTES,
) -> bytes:
    """The JSON array answer with ``<column>_url`` added to each row, or the error refusing it:
    more rows than ``enrichment.max_rows`` (400 too_many_rows), a result over ``max_bytes``
    (400 answer_too_large), or no JSON array of objects (502 presign_failed).

    Each row's bytes are kept as PostgREST wrote them (numbers keep their precision) and the URL
    spliced in before the closing brace; only the key column is decoded. CPU-bound: the proxy
    runs it in a worker thread.
    """
    try:
        rows = _ROWS.decode(body)
        if len(rows) > enrichment.max_rows:
            raise TooManyRows(
                f"Presign adds URLs to at most {enrichment.max_rows} rows; ask for fewer "
                "(limit=, offset= or a Range header)."
            )
        keys = _key_reader(enrichment.column).decode(body)
    # RecursionError: a value nested deeper than the decoder recurses (a jsonb column);
    # MemoryError: msgspec's own answer to an allocation it cannot make.
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError, MemoryError):
        raise PresignFailed(
            "PostgREST's answer is not a JSON array of objects; Presign cannot add URLs to it."
        ) from None
    signer = enrichment.bucket.signer
    prepared = signer.prepare(
        "GET", now=int(time.time()) if now is None else now, expires_in=enrichment.expires_in
    )
    prefix = enrichment.prefix
    name = f'"{enrichment.column}_url":'.encode()
    out = bytearray(b"[")
    for index, (raw, row) in enumerate(zip(rows, keys, strict=True)):
        key = _string(row.key)
        # URLs are ASCII without quotes or backslashes (everything else is percent-encoded),
        # so the JSON string is the URL in quotes.
        url = (
            b'"' + signer.sign(prepared, key).encode() + b'"'
            if key is not None and signable_within(key, prefix)
            else b"null"
        )
        if index:
            out += b","
        if row.existing is not msgspec.UNSET:
            out += _replaced(raw, enrichment.column + "_url", url)
        else:
            # The row without its closing brace (and the whitespace before it), then the URL.
            out += raw
            del out[-1]
            while out[-1] in _WHITESPACE:
                del out[-1]
            if out[-1] != _OPEN_BRACE:
                out += b","
            out += name
            out += url
            out += b"}"
        # ">=": the closing "]" is still to come.
        if len(out) >= max_bytes:
            raise AnswerTooLarge(
                f"With URLs this answer would exceed {max_bytes} bytes; ask for fewer rows "
                "(limit=, offset= or a Range header) or fewer columns."
            )
    out += b"]"
    return bytes(out)


def _string(raw: msgspec.Raw) -> str | None:
    # Only a JSON string is a key; anything else (null, a number, an object) gets a null URL.
    try:
        return _STRING.decode(raw)
    except msgspec.ValidationError:
        return None


def _replaced(raw: msgspec.Raw, field: str, url: bytes) -> bytes:
    # A select= that already names the URL column: the gateway's value wins, in its place.
    row = _OBJECT.decode(raw)
    row[field] = msgspec.Raw(url)
    return msgspec.json.encode(row)
