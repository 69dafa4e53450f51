"""create_app wiring decisions that have no behaviour of their own to observe."""

from __future__ import annotations

from typing import Any, cast

from litestar import Litestar
from litestar.stores.memory import MemoryStore
from litestar.stores.redis import RedisStore

from gateway.proxy import PostgrestMount
from gateway.settings import Settings
from gateway.web.app import _MountsUnder, create_server_app, rate_limit_store
from gateway.web.front_door import FrontDoor


def test_the_per_address_limit_lives_in_memory_by_default() -> None:
    assert isinstance(rate_limit_store(Settings()), MemoryStore)


def test_the_per_address_limit_is_shared_through_redis_when_configured() -> None:
    store = rate_limit_store(Settings(redis_url="redis://127.0.0.1:6399/3"))

    assert isinstance(store, RedisStore)
    assert store._redis.connection_pool.connection_kwargs["port"] == 6399
    assert store._redis.connection_pool.connection_kwargs["db"] == 3


def test_the_server_app_is_the_front_door_with_the_litestar_app_behind_it() -> None:
    # The in-process tests reach the runtime through this (tests/support/in_process.py).
    server_app = create_server_app(Settings())

    assert isinstance(server_app, FrontDoor)
    assert isinstance(server_app.app, Litestar)


async def test_litestar_alone_hands_rest_v1_to_its_own_mount_by_the_raw_path() -> None:
    """Litestar routes no nested mount; create_app's one /rest mount chooses as the front door
    does, so /rest/v1/x reaches the /rest/v1 mount there too."""
    calls: list[str] = []

    def recorder(name: str) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            calls.append(name)

        return app

    mounts = cast(
        dict[str, PostgrestMount], {"/rest": recorder("/rest"), "/rest/v1": recorder("/rest/v1")}
    )
    dispatch = _MountsUnder("/rest", mounts)

    for raw in (b"/rest/v1/projects", b"/rest/projects", b"/rest/v%31/projects"):
        await dispatch({"type": "http", "path": "/ignored", "raw_path": raw}, None, None)

    assert calls == ["/rest/v1", "/rest", "/rest"]


def test_the_server_app_leaves_litestar_its_route_to_every_mount() -> None:
    # A request the front door leaves to Litestar (/rest%40x) can still reach Litestar's route
    # under /rest, whose mount then refuses it with 404 JSON.
    server_app = create_server_app(Settings())
    litestar = cast(Litestar, server_app.app)

    routed = litestar.asgi_router.handle_routing("/rest/x", "GET")[1]

    assert isinstance(routed.fn, _MountsUnder)
    assert set(routed.fn._mounts) == {"/rest", "/rest/v1"}
