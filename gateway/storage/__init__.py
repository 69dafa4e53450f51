"""Object storage: presigned S3 URLs signed locally, scoped to the caller's organization."""

from __future__ import annotations

from gateway.storage._errors import StorageConfigError, StorageNotConfigured
from gateway.storage.check import StorageCheck, check_storage, checks_as_json
from gateway.storage.config import Bucket, StorageConfig, load_storage_config
from gateway.storage.enrich import Enrichment, enrich, enrichment_for
from gateway.storage.keys import key_problem, signable_within
from gateway.storage.presign import Grantee, PresignedUrl, check_keys, presign
from gateway.storage.sigv4 import MAX_EXPIRES, BucketSigner, Credentials, signing_key

__all__ = [
    "MAX_EXPIRES",
    "Bucket",
    "BucketSigner",
    "Credentials",
    "Enrichment",
    "Grantee",
    "PresignedUrl",
    "StorageCheck",
    "StorageConfig",
    "StorageConfigError",
    "StorageNotConfigured",
    "check_keys",
    "check_storage",
    "checks_as_json",
    "enrich",
    "enrichment_for",
    "key_problem",
    "load_storage_config",
    "presign",
    "signable_within",
    "signing_key",
]
