"""Every metric of the gateway, defined once, in the process that first asks for them.

The definitions are made on the first call of :func:`metrics`, not at import: ``gateway
serve`` imports this module before it sets ``PROMETHEUS_MULTIPROC_DIR`` for its workers, and
prometheus_client picks its value store (one file per worker, or memory) when a value is made.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram

#: The ``group`` label of the request metrics: a bounded set, never the path itself.
ROUTE_GROUPS: Final = ("auth", "rest", "storage", "health", "other")
#: The ``method`` label: these, and ``other`` for anything else a client sends.
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The ``status`` label: these codes as themselves (and ``0``, no answer), any other code of
#: 100-599 as its class (``"2xx"`` ... ``"5xx"``), anything else ``other``: the label's values
#: are ours to bound, whatever status PostgREST or a proxied upstream answers with.
STATUSES: Final = frozenset(
    {0, 200, 201, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405, 406, 409, 413, 415, 416, 421,
     422, 429, 500, 502, 503, 504}
)  # fmt: skip
#: The ``outcome`` label of ``gateway_sign_ins_total``.
SIGN_IN_OUTCOMES: Final = ("succeeded", "failed", "locked_out")

# Seconds. The gateway's own answers take from well under a millisecond (a cached token, a
# proxied row) to the password hash's fraction of a second; PostgREST up to its timeouts.
_LATENCY_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Metrics:
    """The metric objects; see docs/operations.md, "Metrics", for each one's meaning."""

    requests: Counter
    request_duration: Histogram
    upstream_duration: Histogram
    token_cache: Counter
    sign_ins: Counter
    refresh_reuse: Counter
    revocation_feed_read: Gauge

    def feed_read(self) -> None:
        """The revocation feed of this process has just read the store."""
        self.revocation_feed_read.set_to_current_time()


_lock = threading.Lock()
_metrics: Metrics | None = None


def metrics() -> Metrics:
    """The process's metrics, defined on the first call (every later call returns them)."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = _define()
    return _metrics


def _define() -> Metrics:
    _use_the_environments_value_store()
    from prometheus_client import Counter, Gauge, Histogram

    return Metrics(
        requests=Counter(
            "gateway_requests",
            "HTTP requests answered, by route group, method and status.",
            ["group", "method", "status"],
        ),
        request_duration=Histogram(
            "gateway_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route group.",
            ["group"],
            buckets=_LATENCY_BUCKETS,
        ),
        upstream_duration=Histogram(
            "gateway_upstream_duration_seconds",
            "Time from sending a request to PostgREST to receiving its answer's head.",
            buckets=_LATENCY_BUCKETS,
        ),
        token_cache=Counter(
            "gateway_token_cache_lookups",
            "Bearer tokens looked up in the verified-token cache, by result (hit or miss).",
            ["result"],
        ),
        sign_ins=Counter(
            "gateway_sign_ins",
            "Sign-ins with email and password, by outcome (succeeded, failed, locked_out).",
            ["outcome"],
        ),
        refresh_reuse=Counter(
            "gateway_refresh_token_reuse_detected",
            "Refresh tokens presented again after their rotation (the session is revoked).",
        ),
        revocation_feed_read=Gauge(
            "gateway_revocation_feed_last_read_timestamp_seconds",
            "When the revocation feed last read the store (Unix time; the oldest process's).",
            multiprocess_mode="livemin",
        ),
    )


def _use_the_environments_value_store() -> None:
    # prometheus_client chooses between its in-memory values and its multiprocess files once,
    # when it is first imported. Should anything have imported it before PROMETHEUS_MULTIPROC_DIR
    # was set, the choice is made again here, before the first value exists.
    from prometheus_client import values

    if "PROMETHEUS_MULTIPROC_DIR" in os.environ and values.ValueClass is values.MutexValue:
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def status_label(status: int) -> str:
    """The ``status`` label value of an answer's status (see :data:`STATUSES`)."""
    if status in STATUSES:
        return str(status)
    if 100 <= status <= 599:
        return f"{status // 100}xx"
    return "other"


class RequestCounter:
    """What the request log records per answer: one counter child and one histogram child,
    each looked up once per label combination and kept (``labels()`` takes a lock and builds
    a key; the hot path pays a dictionary look-up instead)."""

    __slots__ = ("_children", "_durations", "_metrics")

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._children: dict[tuple[str, str, str], Counter] = {}
        self._durations = {group: metrics.request_duration.labels(group) for group in ROUTE_GROUPS}

    def record(self, group: str, method: str, status: int, seconds: float) -> None:
        # The method and the status as label values from bounded sets first: the children's
        # keys are bounded too, whatever methods clients make up or statuses upstreams answer.
        key = (group, method if method in METHODS else "other", status_label(status))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metrics.requests.labels(*key)
        child.inc()
        self._durations[group].observe(seconds)
