"""The gateway's Prometheus metrics: their definitions, and one scrape of them.

Every metric is defined in :mod:`gateway.metrics.definitions`; what counts imports
:func:`metrics` and calls the metric's child. Under ``gateway serve`` every Granian worker
writes its values to files in a private directory (prometheus_client's multiprocess mode) and a
scrape reads them all, so the numbers are the sum (or the max) over the workers.
"""

from gateway.metrics.definitions import (
    METHODS,
    ROUTE_GROUPS,
    SIGN_IN_OUTCOMES,
    Metrics,
    RequestCounter,
    metrics,
)
from gateway.metrics.exposition import (
    CONTENT_TYPE,
    MULTIPROC_ENV,
    DerivedFamilies,
    age_family,
    fresh_multiprocess_dir,
    scrape,
)
from gateway.metrics.listener import MetricsListener

__all__ = [
    "CONTENT_TYPE",
    "METHODS",
    "MULTIPROC_ENV",
    "ROUTE_GROUPS",
    "SIGN_IN_OUTCOMES",
    "DerivedFamilies",
    "Metrics",
    "MetricsListener",
    "RequestCounter",
    "age_family",
    "fresh_multiprocess_dir",
    "metrics",
    "scrape",
]
