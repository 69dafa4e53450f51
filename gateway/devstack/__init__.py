"""``gateway dev``: the whole stack on one machine, and the PostgREST binary it runs."""

from __future__ import annotations

from gateway.devstack.errors import DevStackError
from gateway.devstack.postgrest_binary import (
    POSTGREST_VERSION,
    PostgRESTMissing,
    find_postgrest,
    user_cache_binary,
)
from gateway.devstack.roles import DEV_ROLE_MARK, foreign_roles
from gateway.devstack.stack import DevStackOptions, run_dev_stack

__all__ = [
    "DEV_ROLE_MARK",
    "POSTGREST_VERSION",
    "DevStackError",
    "DevStackOptions",
    "PostgRESTMissing",
    "find_postgrest",
    "foreign_roles",
    "run_dev_stack",
    "user_cache_binary",
]
