"""``GET /metrics`` on the main listener, behind GATEWAY_METRICS_TOKEN; the key-age gauges.

Without the token setting the path is unknown (404, the same answer as any unknown path), also
when GATEWAY_METRICS_PORT serves the metrics on a listener of its own. With it, the request
must carry ``Authorization: Bearer <token>``; a missing or wrong one gets 401, the same answer
for both. The comparison is of SHA-256 digests in constant time, so neither the time taken nor
the answer tells how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get
from litestar.exceptions import NotFoundException

from gateway.errors import GatewayError
from gateway.metrics import CONTENT_TYPE, DerivedFamilies, age_family, scrape
from gateway.settings import Settings
from gateway.tokens import KeystoreError, read_manifest
from gateway.web.runtime import RuntimeDep

if TYPE_CHECKING:
    from prometheus_client import Metric

logger = logging.getLogger("gateway.metrics")

METRICS_PATH = "/metrics"


class MetricsTokenRequired(GatewayError):
    code = "unauthorized"
    status = 401


def token_matches(configured: str, authorization: str | None) -> bool:
    """Whether an Authorization header value carries the configured bearer token."""
    scheme, _, presented = (authorization or "").partition(" ")
    given = hashlib.sha256(presented.strip().encode()).digest()
    wanted = hashlib.sha256(configured.encode()).digest()
    # Both sides always compared, so a wrong scheme costs what a wrong token costs.
    return hmac.compare_digest(given, wanted) & (scheme.lower() == "bearer")


@get(METRICS_PATH, sync_to_thread=True, include_in_schema=False)
def metrics_endpoint(request: Request[Any, Any, Any], runtime: RuntimeDep) -> Response[bytes]:
    """The Prometheus text of every worker; the scrape reads files, hence the thread."""
    settings = runtime.settings
    if settings.metrics_token is None:
        raise NotFoundException()
    headers = request.headers.getall("authorization", [])
    if len(headers) != 1 or not token_matches(
        settings.metrics_token.get_secret_value(), headers[0]
    ):
        raise MetricsTokenRequired("Send the metrics token as a bearer token.")
    return Response(
        scrape(key_families(settings)),
        media_type=CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )


def key_families(settings: Settings) -> DerivedFamilies:
    """The signing key's age and the time since the last rotation, read off the keystore's
    manifest at each scrape (every process shares it: no per-worker value to merge)."""

    def families() -> Iterable[Metric]:
        created = activated = None
        try:
            current = read_manifest(settings).current
        except (KeystoreError, OSError) as exc:
            logger.warning("metrics: the keystore manifest cannot be read (%s)", type(exc).__name__)
        else:
            created = current.created_at.timestamp()
            activated = (current.activated_at or current.created_at).timestamp()
        now = time.time()
        return [
            age_family(
                "gateway_signing_key_age_seconds",
                "Seconds since the current signing key was created.",
                created,
                now=now,
            ),
            age_family(
                "gateway_key_rotation_age_seconds",
                "Seconds since the last key rotation (the current key became current).",
                activated,
                now=now,
            ),
        ]

    return families
