"""What the PostgREST mount uses per request, made once when the gateway starts."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.proxy.token_cache import VerifiedTokens
from gateway.revocation import Revocations
from gateway.storage import StorageConfig
from gateway.tokens import KeyRingHolder
from gateway.upstream import UpstreamClient


@dataclass(frozen=True, slots=True)
class MountDependencies:
    """Built by the web layer's ``Runtime`` at start-up; the mount sees nothing else of it."""

    # The key ring tokens are verified against, replaced when the keystore changes.
    keys: KeyRingHolder
    # Access tokens already verified, so a repeated token costs a lookup, not a signature check.
    tokens: VerifiedTokens
    # Ended sessions and suspended users, as every gateway process knows them.
    revocations: Revocations
    # The pooled client to PostgREST.
    http: UpstreamClient
    # The buckets the Presign header may name; None when storage is not configured.
    storage: StorageConfig | None = None
