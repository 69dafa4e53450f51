"""SigV4 for S3 presigned URLs and POST policies: pure, local, byte for byte what botocore signs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
# What S3 accepts for X-Amz-Expires: at most seven days.
MAX_EXPIRES = 7 * 24 * 3600
# botocore's percent_encode_sequence: everything but RFC 3986's unreserved characters.
_QUERY_SAFE = "-_.~"
# botocore's key encoding for S3 paths: "/" separates, "~" is unreserved, the rest is quoted.
_KEY_SAFE = "/~"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Credentials:
    """An access key pair, and the session token of temporary credentials."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


@lru_cache(maxsize=64)
def signing_key(secret_access_key: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """The day's key (kSigning): four HMACs, computed once per secret, day, region and service."""
    k_date = hmac.digest(("AWS4" + secret_access_key).encode(), date.encode(), "sha256")
    k_region = hmac.digest(k_date, region.encode(), "sha256")
    k_service = hmac.digest(k_region, service.encode(), "sha256")
    return hmac.digest(k_service, b"aws4_request", "sha256")


def amz_date(now: int) -> str:
    """``20250304T050607Z`` for a Unix time in seconds."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


@dataclass(frozen=True, slots=True)
class _Prepared:
    """What every URL signed at one second, for one method, expiry and header set shares."""

    # The day's signing key: as good as the secret for a day, so never in a repr or a log.
    key: bytes = field(repr=False)
    # The canonical request around the path: "<method>\n<bucket path>" before it, and
    # "\n<canonical query>\n<canonical headers>\n\n<signed headers>\nUNSIGNED-PAYLOAD" after.
    head: str
    tail: str
    # "AWS4-HMAC-SHA256\n<date>\n<scope>\n"
    to_sign: str
    # "?<query in botocore's order>&X-Amz-Signature="
    query: str


class BucketSigner:
    """Signs URLs for one bucket: virtual-hosted or path-style, on AWS or an S3-compatible host.

    Everything that depends only on the bucket is computed here once; :meth:`prepare` computes
    what depends on the second, the method and the expiry, and :meth:`sign` the rest per key:
    one quote, one SHA-256 and one HMAC.
    """

    __slots__ = (
        "_base",
        "_credentials",
        "_host",
        "_last",
        "_path",
        "_post_url",
        "bucket",
        "region",
    )

    def __init__(
        self,
        *,
        bucket: str,
        region: str,
        credentials: Credentials,
        endpoint: str | None = None,
        path_style: bool = False,
    ) -> None:
        self.bucket = bucket
        self.region = region
        self._credentials = credentials
        if endpoint is None:
            # botocore's legacy global endpoint for us-east-1, the regional one elsewhere.
            host = "s3.amazonaws.com" if region == "us-east-1" else f"s3.{region}.amazonaws.com"
            scheme, netloc = "https", host
        else:
            parts = urlsplit(endpoint)
            scheme, netloc = parts.scheme, parts.netloc
        if path_style:
            self._base = f"{scheme}://{netloc}"
            self._path = f"/{quote(bucket, safe='')}/"
            self._post_url = f"{scheme}://{netloc}/{quote(bucket, safe='')}"
        else:
            netloc = f"{bucket}.{netloc}"
            self._base = f"{scheme}://{netloc}"
            self._path = "/"
            self._post_url = f"{scheme}://{netloc}/"
        self._host = _canonical_host(scheme, netloc)
        # The last prepare(), reused by url() within the same second: one-off URLs then cost
        # what batched ones do.
        self._last: tuple[tuple[str, int, int, tuple[tuple[str, str], ...]], _Prepared] | None = (
            None
        )

    def prepare(
        self, method: str, *, now: int, expires_in: int, headers: tuple[tuple[str, str], ...] = ()
    ) -> _Prepared:
        """The shared part of every URL signed at ``now`` (Unix seconds) for ``method``.

        ``headers`` are signed too (lower-case names, e.g. ``("content-type", "image/png")``):
        the client must then send exactly those values.
        """
        stamp = amz_date(now)
        date = stamp[:8]
        scope = f"{date}/{self.region}/{SERVICE}/aws4_request"
        signed = sorted([*((name, " ".join(value.split())) for name, value in headers)])
        signed.append(("host", self._host))
        signed.sort()
        signed_names = ";".join(name for name, _ in signed)
        canonical_headers = "".join(f"{name}:{value}\n" for name, value in signed)
        credentials = self._credentials
        params = [
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", f"{credentials.access_key_id}/{scope}"),
            ("X-Amz-Date", stamp),
            ("X-Amz-Expires", str(expires_in)),
            ("X-Amz-SignedHeaders", signed_names),
        ]
        if credentials.session_token is not None:
            params.append(("X-Amz-Security-Token", credentials.session_token))
        encoded = [(name, quote(value, safe=_QUERY_SAFE)) for name, value in params]
        in_url_order = "&".join(f"{name}={value}" for name, value in encoded)
        canonical_query = "&".join(f"{name}={value}" for name, value in sorted(encoded))
        return _Prepared(
            key=signing_key(credentials.secret_access_key, date, self.region),
            head=f"{method}\n{self._path}",
            tail=f"\n{canonical_query}\n{canonical_headers}\n{signed_names}\n{UNSIGNED_PAYLOAD}",
            to_sign=f"{ALGORITHM}\n{stamp}\n{scope}\n",
            query=f"?{in_url_order}&X-Amz-Signature=",
        )

    def sign(self, prepared: _Prepared, key: str) -> str:
        """The presigned URL of object ``key`` (the key as stored: it is percent-encoded here)."""
        path = quote(key, safe=_KEY_SAFE)
        digest = hashlib.sha256(f"{prepared.head}{path}{prepared.tail}".encode()).hexdigest()
        signature = hmac.digest(prepared.key, (prepared.to_sign + digest).encode(), "sha256")
        return f"{self._base}{self._path}{path}{prepared.query}{signature.hex()}"

    def url(
        self,
        method: str,
        key: str,
        *,
        now: int,
        expires_in: int,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> str:
        """One presigned URL; for many at once, :meth:`prepare` once and :meth:`sign` each."""
        wanted = (method, now, expires_in, headers)
        last = self._last
        if last is None or last[0] != wanted:
            last = (wanted, self.prepare(method, now=now, expires_in=expires_in, headers=headers))
            self._last = last
        return self.sign(last[1], key)

    def post(
        self, key: str, *, now: int, expires_in: int, content_type: str, max_bytes: int
    ) -> tuple[str, dict[str, str]]:
        """A presigned POST (browser form upload) of exactly ``key``, of that type and at most
        ``max_bytes``: the URL to post to and the form fields to send before the file."""
        stamp = amz_date(now)
        date = stamp[:8]
        credentials = self._credentials
        credential = f"{credentials.access_key_id}/{date}/{self.region}/{SERVICE}/aws4_request"
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + expires_in))
        # botocore's order, fields and conditions alike, so that the policy is its byte for byte.
        fields = {
            "Content-Type": content_type,
            "key": key,
            "x-amz-algorithm": ALGORITHM,
            "x-amz-credential": credential,
            "x-amz-date": stamp,
        }
        conditions: list[object] = [
            {"Content-Type": content_type},
            ["content-length-range", 0, max_bytes],
            {"bucket": self.bucket},
            {"key": key},
            {"x-amz-algorithm": ALGORITHM},
            {"x-amz-credential": credential},
            {"x-amz-date": stamp},
        ]
        if credentials.session_token is not None:
            fields["x-amz-security-token"] = credentials.session_token
            conditions.append({"x-amz-security-token": credentials.session_token})
        policy = base64.b64encode(
            json.dumps({"expiration": expiration, "conditions": conditions}).encode()
        ).decode()
        fields["policy"] = policy
        key_of_day = signing_key(credentials.secret_access_key, date, self.region)
        fields["x-amz-signature"] = hmac.digest(key_of_day, policy.encode(), "sha256").hex()
        return self._post_url, fields

    def bucket_url(self) -> str:
        """The bucket's own URL (where presigned POSTs go)."""
        return self._post_url

    def head_bucket_url(self, *, now: int, expires_in: int) -> str:
        """A presigned HEAD of the bucket itself (S3's HeadBucket): whether it exists and these
        credentials may use it. Its path has no final "/" when path-style, as botocore signs it."""
        prepared = self.prepare("HEAD", now=now, expires_in=expires_in)
        path = self._path.rstrip("/") or "/"
        digest = hashlib.sha256(f"HEAD\n{path}{prepared.tail}".encode()).hexdigest()
        signature = hmac.digest(prepared.key, (prepared.to_sign + digest).encode(), "sha256")
        return f"{self._base}{path}{prepared.query}{signature.hex()}"


def _canonical_host(scheme: str, netloc: str) -> str:
    # botocore's rule: the default port of the scheme is left out of the signed Host.
    host, _, port = (
        netloc.rpartition(":") if netloc.rsplit("]", 1)[-1].count(":") else (netloc, "", "")
    )
    if port and int(port) == _DEFAULT_PORTS.get(scheme):
        return host.lower()
    return netloc.lower()


__all__ = ["MAX_EXPIRES", "BucketSigner", "Credentials", "amz_date", "signing_key"]
