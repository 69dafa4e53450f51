"""The one way to presigned URLs (``POST /storage/presign``, ``gateway storage presign``)."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.storage._errors import (
    InvalidKey,
    InvalidPresignRequest,
    KeyOutsidePrefix,
    NoOrganization,
    OperationNotAllowed,
    UnknownBucket,
)
from gateway.storage.config import OPERATIONS, Bucket, StorageConfig
from gateway.storage.keys import key_problem

DEFAULT_EXPIRES_IN = 900
# RFC 9110's media type: type "/" subtype, then "; name=value" parameters (tokens only).
_TCHARS = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_CONTENT_TYPE = re.compile(rf"{_TCHARS}/{_TCHARS}(?:[ \t]*;[ \t]*{_TCHARS}={_TCHARS})*")
_ACTIVE_TYPES = frozenset({"text/html", "text/xsl", "multipart/x-mixed-replace"})
_METHODS = {"get": "GET", "put": "POST", "delete": "DELETE"}


@dataclass(frozen=True, slots=True)
class Grantee:
    """Who asks, as verified by the caller of :func:`presign` (a token, or the CLI's --as)."""

    user_id: int
    organization_id: int | None
    # The role in that organization (org_admin, org_client), None outside one.
    role: str | None


@dataclass(frozen=True, slots=True)
class PresignedUrl:
    key: str
    url: str
    method: str
    expires_at: str
    # The form fields of a presigned POST (uploads); None for GET and DELETE.
    fields: dict[str, str] | None = None


def presign(
    storage: StorageConfig,
    *,
    grantee: Grantee,
    bucket: str,
    operation: str,
    keys: Sequence[object],
    expires_in: int | None = None,
    content_type: str | None = None,
    now: int | None = None,
) -> list[PresignedUrl]:
    """A URL per key, in their order, or the error that refuses the whole request.

    Every key is checked before one is signed: one key outside the caller's prefix refuses them
    all, naming the first bad index, so a batch never half-succeeds.
    """
    chosen = _bucket(storage, bucket)
    if operation not in OPERATIONS:
        raise InvalidPresignRequest(f"operation must be one of {', '.join(OPERATIONS)}.")
    if grantee.organization_id is None:
        raise NoOrganization("Presigned URLs are for a caller acting in an organization.")
    if not chosen.allows(grantee.role, operation):
        raise OperationNotAllowed(f"Your role may not {operation} objects in this bucket.")
    if not keys:
        raise InvalidPresignRequest("keys must name at least one object key.")
    if len(keys) > storage.max_batch:
        raise InvalidPresignRequest(f"keys may name at most {storage.max_batch} objects.")
    lifetime = _lifetime(expires_in, chosen)
    if operation == "put":
        content_type = _upload_type(content_type, chosen)
    prefix = chosen.prefix_for(organization_id=grantee.organization_id, user_id=grantee.user_id)
    checked = check_keys(keys, prefix, upload=operation == "put")
    at = int(time.time()) if now is None else now
    expires_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at + lifetime))
    method = _METHODS[operation]
    signer = chosen.signer
    if operation == "put":
        assert content_type is not None
        urls = []
        for key in checked:
            url, fields = signer.post(
                key,
                now=at,
                expires_in=lifetime,
                content_type=content_type,
                max_bytes=chosen.upload_max_bytes,
            )
            urls.append(PresignedUrl(key, url, method, expires_at, fields))
        return urls
    prepared = signer.prepare(method, now=at, expires_in=lifetime)
    return [PresignedUrl(key, signer.sign(prepared, key), method, expires_at) for key in checked]


def check_keys(keys: Sequence[object], prefix: str, *, upload: bool = False) -> list[str]:
    """The keys, each well formed and under ``prefix``; else the error naming the first bad one.

    The prefix test is on the key exactly as it will be signed: no decoding, no normalization,
    so what is checked is what S3 gets. An upload's key may not hold ``$``: S3 and MinIO
    replace ``${filename}`` in a POST's key with the uploaded file's name after checking the
    policy's exact key, so the uploader would choose the real key.
    """
    checked: list[str] = []
    for index, key in enumerate(keys):
        problem = key_problem(key)
        if problem is not None:
            raise InvalidKey(f"keys[{index}] {problem}.")
        assert isinstance(key, str)
        if not key.startswith(prefix) or len(key) == len(prefix):
            raise KeyOutsidePrefix(f"keys[{index}] is outside your part of the bucket.")
        if upload and "$" in key:
            raise InvalidKey(f"keys[{index}] holds '$', which S3 substitutes in an upload's key.")
        checked.append(key)
    return checked


def _bucket(storage: StorageConfig, name: str) -> Bucket:
    chosen = storage.buckets.get(name)
    if chosen is None:
        raise UnknownBucket("No such bucket is configured.")
    return chosen


def _lifetime(expires_in: int | None, bucket: Bucket) -> int:
    if expires_in is None:
        return min(DEFAULT_EXPIRES_IN, bucket.max_expires_in)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 1:
        raise InvalidPresignRequest("expires_in must be a positive number of seconds.")
    return min(expires_in, bucket.max_expires_in)


def _upload_type(content_type: str | None, bucket: Bucket) -> str:
    # The type is signed into the upload's policy: the client cannot send another.
    if not content_type:
        raise InvalidPresignRequest("An upload needs its content_type, such as 'image/png'.")
    if len(content_type) > 255 or not _CONTENT_TYPE.fullmatch(content_type):
        raise InvalidPresignRequest(
            "content_type must be a media type such as 'image/png' or 'text/plain; charset=utf-8'."
        )
    allowed = bucket.upload_content_types
    if allowed is not None and content_type not in allowed:
        raise InvalidPresignRequest(
            f"content_type must be one of {', '.join(sorted(allowed))} in this bucket."
        )
    base = content_type.split(";", 1)[0].strip().lower()
    if allowed is None and _is_active(base):
        raise InvalidPresignRequest(
            f"{base} is a type browsers run (scripts, markup); a bucket allows it only when "
            "its upload_content_types lists it."
        )
    return content_type


def _is_active(media_type: str) -> bool:
    # Served back from the bucket's origin these run script: HTML, XML (XHTML, SVG, XSLT, any
    # +xml), JavaScript, and multipart/x-mixed-replace, which browsers render part by part.
    return (
        media_type in _ACTIVE_TYPES
        or media_type.endswith(("+xml", "/xml"))
        or "javascript" in media_type
        or "ecmascript" in media_type
    )
