"""Everything that speaks HTTP for the gateway itself: the app, the front door, /auth, health."""

from __future__ import annotations

from gateway.web.app import create_app, create_app_from_env, create_server_app
from gateway.web.runtime import load_storage

__all__ = ["create_app", "create_app_from_env", "create_server_app", "load_storage"]
