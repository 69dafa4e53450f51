"""Fixtures reused from the other suites.

From tests/integration: the in-process ``client`` of the real app over a real store. From
tests/e2e: PostgreSQL, the real PostgREST and a real gateway process (``proxy``).
"""

from __future__ import annotations

from tests.e2e.conftest import postgrest, postgrest_bin, served
from tests.e2e.test_proxy import proxy
from tests.integration.conftest import accounts, auth_settings, client

__all__ = [
    "accounts",
    "auth_settings",
    "client",
    "postgrest",
    "postgrest_bin",
    "proxy",
    "served",
]
