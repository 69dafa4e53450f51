"""Fixtures reused from the other suites, and the settings the security tests share.

From tests/integration: the in-process ``client`` of the real app over a real store. From
tests/e2e: PostgreSQL, the real PostgREST and a real gateway process (``proxy``).
"""

from __future__ import annotations

from gateway.settings import Settings
from tests.e2e.conftest import postgrest, postgrest_bin, served
from tests.e2e.test_proxy import proxy
from tests.integration.conftest import accounts, auth_settings, client
from tests.support.postgres import free_port

__all__ = [
    "accounts",
    "auth_settings",
    "client",
    "postgrest",
    "postgrest_bin",
    "proxy",
    "served",
]


def with_a_dead_upstream(settings: Settings) -> Settings:
    """``settings`` with the upstream on a port nobody listens on: a request that gets past the
    gateway's checks answers 502 within a second, and nothing reaches a PostgREST."""
    return settings.model_copy(
        update={
            "upstream_url": f"http://127.0.0.1:{free_port()}",
            "upstream_connect_timeout": 1,
        }
    )
