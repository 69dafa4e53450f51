"""Everything that speaks HTTP for the gateway itself: the app, the front door, /auth, health."""

from __future__ import annotations

from gateway.web.app import configure_logging, create_app, create_app_from_env, create_server_app
from gateway.web.log_format import granian_log_config
from gateway.web.metrics import key_families
from gateway.web.runtime import load_storage

__all__ = [
    "configure_logging",
    "create_app",
    "create_app_from_env",
    "create_server_app",
    "granian_log_config",
    "key_families",
    "load_storage",
]
