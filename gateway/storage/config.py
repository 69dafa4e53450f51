"""GATEWAY_STORAGE_CONFIG: the buckets, read from TOML once and checked before serving."""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gateway.storage._errors import StorageConfigError
from gateway.storage.sigv4 import MAX_EXPIRES, BucketSigner, Credentials
from gateway.store import ORG_ROLES

OPERATIONS = ("get", "put", "delete")
DEFAULT_MAX_EXPIRES_IN = 3600
DEFAULT_UPLOAD_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_ROWS = 10_000
# S3's largest single upload (a POST or a PUT): 5 GiB.
MAX_UPLOAD_BYTES = 5 * 1024**3
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_PLACEHOLDERS = ("{organization_id}", "{user_id}")
_KNOWN = frozenset(
    {
        "region",
        "prefix",
        "operations",
        "endpoint",
        "path_style",
        "max_expires_in",
        "access_key_id_env",
        "secret_access_key_env",
        "session_token_env",
        "upload_content_types",
        "upload_max_bytes",
    }
)


@dataclass(frozen=True, slots=True)
class Bucket:
    name: str
    region: str
    # e.g. "orgs/{organization_id}/": each placeholder a whole segment, ending in "/".
    prefix: str
    operations: Mapping[str, frozenset[str]]
    max_expires_in: int
    upload_content_types: frozenset[str] | None
    upload_max_bytes: int
    signer: BucketSigner
    endpoint: str | None = None

    def prefix_for(self, *, organization_id: int, user_id: int) -> str:
        """The caller's part of the bucket: every key they get a URL for starts with it."""
        return self.prefix.replace("{organization_id}", str(organization_id)).replace(
            "{user_id}", str(user_id)
        )

    def allows(self, role: str | None, operation: str) -> bool:
        return role is not None and operation in self.operations.get(role, frozenset())


@dataclass(frozen=True, slots=True)
class StorageConfig:
    buckets: Mapping[str, Bucket]
    max_batch: int
    # Most rows of one answer the Presign header adds URLs to (GATEWAY_STORAGE_MAX_ROWS).
    max_rows: int = DEFAULT_MAX_ROWS


def load_storage_config(
    path: str, *, environ: Mapping[str, str], max_batch: int, max_rows: int = DEFAULT_MAX_ROWS
) -> StorageConfig:
    """Read and check the file; raise StorageConfigError with one line naming the problem."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise StorageConfigError(
            f"GATEWAY_STORAGE_CONFIG: cannot read {path}: {exc.strerror}"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise StorageConfigError(f"GATEWAY_STORAGE_CONFIG: {path} is not TOML: {exc}") from None
    try:
        return StorageConfig(
            buckets=_buckets(document, environ), max_batch=max_batch, max_rows=max_rows
        )
    except _Invalid as exc:
        raise StorageConfigError(f"GATEWAY_STORAGE_CONFIG ({path}): {exc}") from None


class _Invalid(Exception):
    pass


def _buckets(document: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Bucket]:
    unknown = sorted(set(document) - {"buckets"})
    if unknown:
        raise _Invalid(f"unknown table {unknown[0]!r} (only [buckets.<name>] tables)")
    tables = document.get("buckets")
    if not isinstance(tables, dict) or not tables:
        raise _Invalid("no [buckets.<name>] table")
    return {name: _bucket(name, table, environ) for name, table in tables.items()}


def _bucket(name: str, table: object, environ: Mapping[str, str]) -> Bucket:
    where = f"buckets.{name}"
    if not isinstance(table, dict):
        raise _Invalid(f"{where} must be a table")
    unknown = sorted(set(table) - _KNOWN)
    if unknown:
        raise _Invalid(f"{where}.{unknown[0]} is not a bucket setting")
    if not _BUCKET_NAME.fullmatch(name) or ".." in name:
        raise _Invalid(f"{where}: {name!r} is not an S3 bucket name")
    region = _required(table, where, "region", str)
    if not _REGION.fullmatch(region):
        raise _Invalid(f"{where}.region: {region!r} is not a region such as 'eu-west-1'")
    path_style = _optional(table, where, "path_style", bool, False)
    endpoint = _endpoint(table.get("endpoint"), where)
    if not path_style and "." in name:
        raise _Invalid(f"{where}: a bucket name with dots needs path_style = true")
    if not path_style and endpoint is not None and _is_ip_host(endpoint):
        raise _Invalid(f"{where}: an IP address endpoint needs path_style = true")
    max_expires_in = _optional(table, where, "max_expires_in", int, DEFAULT_MAX_EXPIRES_IN)
    if not 1 <= max_expires_in <= MAX_EXPIRES:
        raise _Invalid(f"{where}.max_expires_in must be between 1 and {MAX_EXPIRES} seconds")
    max_bytes = _optional(table, where, "upload_max_bytes", int, DEFAULT_UPLOAD_MAX_BYTES)
    if not 1 <= max_bytes <= MAX_UPLOAD_BYTES:
        raise _Invalid(f"{where}.upload_max_bytes must be between 1 and {MAX_UPLOAD_BYTES}")
    return Bucket(
        name=name,
        region=region,
        prefix=_prefix(_required(table, where, "prefix", str), where),
        operations=_operations(_required(table, where, "operations", dict), where),
        max_expires_in=max_expires_in,
        upload_content_types=_content_types(table.get("upload_content_types"), where),
        upload_max_bytes=max_bytes,
        signer=BucketSigner(
            bucket=name,
            region=region,
            credentials=_credentials(table, where, environ),
            endpoint=endpoint,
            path_style=path_style,
        ),
        endpoint=endpoint,
    )


def _required(table: dict[str, Any], where: str, name: str, kind: type) -> Any:
    if name not in table:
        raise _Invalid(f"{where}.{name} is missing")
    return _optional(table, where, name, kind, None)


def _optional(table: dict[str, Any], where: str, name: str, kind: type, default: Any) -> Any:
    value = table.get(name, default)
    # bool is an int in Python; an int setting given `true` is a mistake all the same.
    if value is not None and (
        not isinstance(value, kind) or (kind is int and isinstance(value, bool))
    ):
        raise _Invalid(f"{where}.{name} must be a {kind.__name__.replace('dict', 'table')}")
    return value


def _prefix(template: str, where: str) -> str:
    # Each placeholder a whole segment and a final "/": "orgs/1/" can then never be the start
    # of org 12's "orgs/12/", and ids (digits) cannot reshape the path.
    segments = template.split("/")
    if not template.endswith("/") or template.startswith("/") or "" in segments[:-1]:
        raise _Invalid(
            f"{where}.prefix must be segments ending in '/', e.g. 'orgs/{{organization_id}}/'"
        )
    for segment in segments[:-1]:
        if ("{" in segment or "}" in segment) and segment not in _PLACEHOLDERS:
            raise _Invalid(
                f"{where}.prefix: {segment!r} is not a segment; placeholders are whole "
                "segments: {organization_id}, {user_id}"
            )
        if segment in (".", "..") or any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in segment):
            raise _Invalid(f"{where}.prefix: {segment!r} is not a key segment")
    if "{organization_id}" not in segments:
        raise _Invalid(f"{where}.prefix must hold the segment {{organization_id}}")
    return template


def _operations(table: dict[str, Any], where: str) -> dict[str, frozenset[str]]:
    operations: dict[str, frozenset[str]] = {}
    for role, allowed in table.items():
        if role not in ORG_ROLES:
            raise _Invalid(f"{where}.operations: {role!r} is not an organization role {ORG_ROLES}")
        if not isinstance(allowed, list) or any(op not in OPERATIONS for op in allowed):
            raise _Invalid(f"{where}.operations.{role} must be a list of {', '.join(OPERATIONS)}")
        operations[role] = frozenset(allowed)
    return operations


def _endpoint(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"{where}.endpoint must be a string")
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
        or parts.netloc != parts.netloc.lower()
    ):
        raise _Invalid(
            f"{where}.endpoint must be a lower-case http(s) origin such as "
            "'https://s3.example.com' (no path, query or user)"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise _Invalid(f"{where}.endpoint has an invalid port") from None
    return f"{parts.scheme}://{parts.netloc}"


def _is_ip_host(endpoint: str) -> bool:
    try:
        ipaddress.ip_address(urlsplit(endpoint).hostname or "")
    except ValueError:
        return False
    return True


def _content_types(value: object, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
        isinstance(item, str) and _MEDIA_TYPE.fullmatch(item) for item in value
    ):
        raise _Invalid(
            f"{where}.upload_content_types must be a list of media types such as 'image/png'"
        )
    return frozenset(value)


def _credentials(table: dict[str, Any], where: str, environ: Mapping[str, str]) -> Credentials:
    def variable(setting: str, default: str) -> str:
        name = _optional(table, where, setting, str, default)
        if not _ENV_NAME.fullmatch(name):
            # Never the value: a secret pasted here instead of a variable's name would be logged.
            raise _Invalid(
                f"{where}.{setting} is not an environment variable name "
                "(upper-case letters, digits and '_'; the secret itself goes in that variable)"
            )
        return str(name)

    key_id = variable("access_key_id_env", "AWS_ACCESS_KEY_ID")
    secret = variable("secret_access_key_env", "AWS_SECRET_ACCESS_KEY")
    token = variable("session_token_env", "AWS_SESSION_TOKEN")
    for name in (key_id, secret):
        if not environ.get(name):
            raise _Invalid(f"{where}: the environment variable {name} is not set")
    if "session_token_env" in table and not environ.get(token):
        raise _Invalid(f"{where}: the environment variable {token} is not set")
    return Credentials(environ[key_id], environ[secret], environ.get(token) or None)
