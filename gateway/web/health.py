"""Liveness and readiness probes."""

from __future__ import annotations

import asyncio

from litestar import Response, get

from gateway.errors import StoreUnavailable, error_document
from gateway.store import is_up_to_date, ping_store
from gateway.upstream import UpstreamError
from gateway.web.runtime import Runtime, RuntimeDep

# Seconds /readyz waits for PostgREST's root before it calls it unreachable.
PROBE_TIMEOUT = 2.0


@get("/healthz", sync_to_thread=False, tags=["health"], summary="Liveness")
def healthz() -> dict[str, str]:
    """200 while the process serves requests; it checks nothing else."""
    return {"status": "ok"}


@get("/readyz", tags=["health"], summary="Readiness")
async def readyz(runtime: RuntimeDep) -> Response[dict[str, object]]:
    """200 when the store is reachable and migrated, a signing key is loaded and PostgREST
    answers; else 503 with every check's result."""
    checks: dict[str, str] = {}
    try:
        await ping_store(runtime.engine)
        checks["store"] = "ok" if await is_up_to_date(runtime.engine) else "not migrated"
    except Exception:  # noqa: BLE001 - any failure to reach the store means "not ready"
        checks["store"] = "unreachable"
    try:
        checks["keystore"] = "ok" if runtime.keys.ring.current_kid else "no signing key"
    except RuntimeError:
        checks["keystore"] = "not loaded"
    checks["upstream"] = await _upstream_answers(runtime)
    failing = {name: result for name, result in checks.items() if result != "ok"}
    if failing:
        detail = ", ".join(f"{name} {result}" for name, result in failing.items())
        return Response(
            {
                **error_document(
                    code=StoreUnavailable.code if "store" in failing else "not_ready",
                    message=f"The gateway is not ready: {detail}.",
                ),
                "checks": checks,
            },
            status_code=503,
        )
    return Response({"status": "ready", "checks": checks}, status_code=200)


async def _upstream_answers(runtime: Runtime) -> str:
    """Any HTTP answer from PostgREST's root counts: readiness asks "reachable", not "healthy"."""
    http = runtime.http
    try:
        # Through the pool the mount uses: TCP or a Unix socket alike.
        async with asyncio.timeout(PROBE_TIMEOUT):
            async with http.request(
                b"GET", http.address.target(b"/"), [(b"host", http.address.host_header)]
            ) as answer:
                await answer.read()
    except (UpstreamError, TimeoutError):
        return "unreachable"
    return "ok"
