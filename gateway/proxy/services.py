"""What the mount uses per request, as one narrow interface (the web layer's Runtime has it)."""

from __future__ import annotations

from typing import Protocol

import aiohttp

from gateway.proxy.token_cache import VerifiedTokens
from gateway.revocation.feed import Revocations
from gateway.tokens.watcher import KeyRingHolder


class MountServices(Protocol):
    @property
    def keys(self) -> KeyRingHolder: ...

    @property
    def tokens(self) -> VerifiedTokens: ...

    @property
    def revocations(self) -> Revocations: ...

    @property
    def http(self) -> aiohttp.ClientSession: ...
