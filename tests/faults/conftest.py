"""Shared fixtures of the fault tests: the e2e database, PostgREST, and small helpers.

The module-scoped ``served`` database (roles, the ``projects`` example, accounts ada, carl and
eve) and the real PostgREST come from the e2e fixtures; they are re-exported here so that pytest
finds them for the tests of this folder.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import (  # noqa: F401 - fixtures, found by pytest through this module
    PASSWORD,
    Served,
    postgrest,
    postgrest_bin,
    served,
)
from tests.support.waiting import wait_for

__all__ = ["PASSWORD", "Served", "kid_of", "login", "wait_for"]


def kid_of(token: str) -> str:
    import jwt

    kid: str = jwt.get_unverified_header(token)["kid"]
    return kid


def login(base: str, email: str = "ada@example.com", timeout: float = 10) -> dict[str, Any]:
    response = httpx.post(
        f"{base}/auth/login", json={"email": email, "password": PASSWORD}, timeout=timeout
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer
