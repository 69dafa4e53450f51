"""``create_app(settings)``: wires the gateway's parts into one Litestar application."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from importlib.metadata import version
from typing import Any, cast

from litestar import Litestar, Router, asgi
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin
from litestar.stores.base import Store
from litestar.stores.memory import MemoryStore
from litestar.types import ControllerRouterHandler

from gateway.asgi import raw_path_of
from gateway.proxy import (
    SUPABASE_REST_PREFIX,
    MountDependencies,
    PostgrestMount,
    mount_prefix,
    under_prefix,
)
from gateway.settings import Settings, load_settings
from gateway.web import health
from gateway.web import keys as key_routes
from gateway.web.admin import AdminController
from gateway.web.api_docs import api_docs
from gateway.web.auth import (
    AuthController,
    OrganizationsController,
    PasswordController,
    SignupController,
    SupabaseAuthController,
    auth_rate_limit,
)
from gateway.web.cors import cors_middleware
from gateway.web.demo import demo_page
from gateway.web.errors import exception_handlers, json_not_found
from gateway.web.front_door import FrontDoor
from gateway.web.json_body import JSONRequest
from gateway.web.log_format import formatter_for
from gateway.web.metrics import metrics_endpoint
from gateway.web.response_headers import wrap_own_answers
from gateway.web.runtime import Runtime, runtime_of
from gateway.web.storage import StorageController

# The gateway's own endpoints take small JSON bodies; anything bigger is refused with 413.
MAX_BODY_BYTES = 64 * 1024

OPENAPI_PATH = "/schema"


def create_app(settings: Settings) -> Litestar:
    """The whole gateway as one Litestar application, the mount routed by Litestar.

    ``gateway serve`` and the in-process tests run :func:`create_server_app` instead: the same
    application, with PostgREST traffic handed to the same mount before Litestar sees it.
    """
    app, _ = _build(settings)
    return app


def create_server_app(settings: Settings) -> FrontDoor:
    """What the server runs: the front door, with :func:`create_app`'s application behind it."""
    app, mounts = _build(settings)
    # A copy: Litestar's own route (create_app's) keeps every mount in the original.
    others = {prefix: mount for prefix, mount in mounts.items() if prefix != settings.proxy_prefix}
    return FrontDoor(cast(Any, app), mounts[settings.proxy_prefix], settings, others)


def _build(settings: Settings) -> tuple[Litestar, dict[str, PostgrestMount]]:
    # The mount is made before the application that routes to it, and the runtime only in the
    # application's lifespan: the mount asks for its dependencies per request.
    app: Litestar

    def current_mount_dependencies() -> MountDependencies:
        return runtime_of(app.state).mount_dependencies

    mounts = postgrest_mounts(settings, current_mount_dependencies)
    docs, docs_policies = api_docs(settings, openapi_path=OPENAPI_PATH)
    demo_routes, demo_policies = demo_page(settings)
    page_policies = {**docs_policies, **demo_policies}
    app = Litestar(
        route_handlers=[*_routes(settings, mounts), *demo_routes],
        lifespan=[_lifespan(settings)],
        middleware=[cast(Any, cors_middleware(settings))],
        stores={"auth_rate_limit": rate_limit_store(settings)},
        exception_handlers=exception_handlers,
        request_max_body_size=MAX_BODY_BYTES,
        request_class=JSONRequest,
        openapi_config=_openapi_config(docs),
        logging_config=None,
        dependencies={"runtime": Provide(runtime_of, sync_to_thread=False)},
        debug=False,
    )
    _wrap_own_answers(app, settings, page_policies)
    return app, mounts


def _proxy_prefixes(settings: Settings) -> tuple[str, ...]:
    # GATEWAY_SUPABASE=false: no /rest/v1 mount, so /rest/v1 is the table v1 under /rest again.
    if not settings.supabase:
        return (settings.proxy_prefix,)
    return tuple(dict.fromkeys((settings.proxy_prefix, SUPABASE_REST_PREFIX)))


def postgrest_mounts(
    settings: Settings, dependencies: Callable[[], MountDependencies]
) -> dict[str, PostgrestMount]:
    """The mount at GATEWAY_PROXY_PREFIX, and one at /rest/v1 where supabase-js looks for
    PostgREST: the same class with the same dependencies (keys, token cache, revocations,
    upstream session), so the same checks; each rewrites answers for its own prefix."""
    return {
        prefix: PostgrestMount(settings.model_copy(update={"proxy_prefix": prefix}), dependencies)
        for prefix in _proxy_prefixes(settings)
    }


def _lifespan(settings: Settings) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    return lifespan


def _routes(settings: Settings, mounts: dict[str, PostgrestMount]) -> list[ControllerRouterHandler]:
    # Raw ASGI mounts: Litestar only routes to them; no request or response object is built.
    postgrest = [
        asgi(path=prefix, is_mount=True, copy_scope=False, include_in_schema=False)(
            _MountsUnder(prefix, mounts)
        )
        for prefix in mounts
        if not any(under_prefix(prefix, other) for other in mounts if other != prefix)
    ]
    # The per-address limit guards /auth and /admin, not PostgREST traffic.
    auth = Router(
        path="/",
        route_handlers=[
            AuthController,
            SignupController,
            # GATEWAY_SUPABASE=false: /auth/v1 is an unknown path (404) like any other.
            *([SupabaseAuthController] if settings.supabase else []),
            PasswordController,
            OrganizationsController,
            AdminController,
            StorageController,
        ],
        middleware=[auth_rate_limit(settings).middleware],
    )
    return [
        health.healthz,
        health.readyz,
        key_routes.jwks,
        key_routes.openid_configuration,
        metrics_endpoint,
        auth,
        *postgrest,
    ]


class _MountsUnder:
    """Litestar routes no mount nested in another (``/rest/v1`` in ``/rest``): one Litestar
    mount per outermost prefix hands each request to the mount the raw path chooses, as the
    server's front door does (``mount_prefix``)."""

    __slots__ = ("_mounts", "_prefix", "_prefixes")

    def __init__(self, prefix: str, mounts: dict[str, PostgrestMount]) -> None:
        self._prefix = prefix
        self._mounts = mounts
        self._prefixes = tuple(mounts)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        chosen = mount_prefix(raw_path_of(scope), scope["path"], self._prefixes)
        await self._mounts[chosen or self._prefix](scope, receive, send)


def _openapi_config(docs: list[OpenAPIRenderPlugin]) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="postgrest-gateway",
        version=version("postgrest-gateway"),
        path=OPENAPI_PATH,
        render_plugins=[JsonRenderPlugin(path=["/", "/openapi.json"]), *docs],
        openapi_router=Router(
            OPENAPI_PATH,
            route_handlers=[],
            include_in_schema=False,
            after_request=json_not_found,
        ),
    )


def _wrap_own_answers(
    app: Litestar, settings: Settings, page_policies: Mapping[str, bytes]
) -> None:
    # Around the whole handler, not as route middleware: the router's own 404 and 405 answers
    # get the request log, X-Request-Id and the headers too (see response_headers.py).
    app.asgi_handler = cast(
        Any,
        wrap_own_answers(
            cast(Any, app.asgi_handler),
            proxy_prefixes=_proxy_prefixes(settings),
            page_policies=page_policies,
        ),
    )


def rate_limit_store(settings: Settings) -> Store:
    """Redis when GATEWAY_REDIS_URL is set (limits shared by every replica), else memory."""
    if settings.redis_url:
        # Imported here: redis is the optional extra postgrest-gateway[redis], and the settings
        # refuse GATEWAY_REDIS_URL in one line when it is missing.
        from litestar.stores.redis import RedisStore

        return RedisStore.with_client(url=settings.redis_url, namespace="gateway")
    return MemoryStore()


def create_app_from_env() -> FrontDoor:
    """The server's entry point (``gateway serve`` hands it to Granian in each worker)."""
    settings = load_settings()
    configure_logging(settings)
    return create_server_app(settings)


def configure_logging(settings: Settings) -> None:
    """GATEWAY_LOG_LEVEL and GATEWAY_LOG_FORMAT (text, or one JSON object per line)."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter_for(settings.log_format))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])
    # Alembic narrates every migration context it opens (readiness checks open one).
    logging.getLogger("alembic").setLevel(logging.WARNING)
