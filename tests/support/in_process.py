"""In-process test clients of what ``gateway serve`` runs: the front door, Litestar behind it.

``create_server_app`` is the application the server hands to Granian: PostgREST traffic goes
to the mount before Litestar, everything else (the lifespan included) to Litestar. A test of
``create_app`` (Litestar alone) would send PostgREST traffic through Litestar's own route to the
mount, a path no request takes in production.
"""

from __future__ import annotations

from typing import Any, cast

from litestar import Litestar
from litestar.testing import AsyncTestClient, TestClient
from litestar.types import ASGIApp as LitestarASGIApp

from gateway.settings import Settings
from gateway.web.app import create_server_app
from gateway.web.front_door import FrontDoor
from gateway.web.runtime import Runtime


def runtime_behind(front_door: FrontDoor) -> Runtime:
    """The runtime the Litestar app behind ``front_door`` started (its lifespan must have run)."""
    litestar = front_door.app
    assert isinstance(litestar, Litestar)
    runtime: Runtime = litestar.state.runtime
    return runtime


def as_test_app(front_door: FrontDoor) -> LitestarASGIApp:
    # The front door takes gateway/asgi/types.py's looser ASGI types; Litestar's test clients
    # are typed with its TypedDict scopes, though they call any ASGI app the same way.
    return cast(LitestarASGIApp, front_door)


class GatewayClient(AsyncTestClient[LitestarASGIApp]):
    """Litestar's async test client over ``create_server_app(settings)``, lifespan included.

    ``client.app`` is the test client's wrapper around the front door; the door itself is
    ``client.front_door``, and ``runtime_behind(client.front_door)`` the running runtime.
    """

    def __init__(self, settings: Settings, **options: Any) -> None:
        self.front_door = create_server_app(settings)
        super().__init__(app=as_test_app(self.front_door), **options)


class SyncGatewayClient(TestClient[LitestarASGIApp]):
    """As :class:`GatewayClient`, for a test that is not async."""

    def __init__(self, settings: Settings, **options: Any) -> None:
        self.front_door = create_server_app(settings)
        super().__init__(app=as_test_app(self.front_door), **options)
