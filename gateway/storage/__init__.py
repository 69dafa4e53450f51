"""Object storage: presigned S3 URLs signed locally, scoped to the caller's organization."""

from __future__ import annotations

from gateway.storage.sigv4 import MAX_EXPIRES, BucketSigner, Credentials, signing_key

__all__ = ["MAX_EXPIRES", "BucketSigner", "Credentials", "signing_key"]
