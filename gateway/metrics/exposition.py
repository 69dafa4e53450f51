"""One scrape: every worker's values (multiprocess mode) or this process's, as Prometheus text.

Seconds-since values (the revocation feed's lag, the signing key's age) are computed at the
scrape from the timestamps the processes record, so no process has to keep a gauge ticking.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from gateway.metrics.definitions import metrics

if TYPE_CHECKING:
    from prometheus_client import Metric

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
#: Prometheus's text format, version 0.0.4: what every Prometheus-compatible scraper reads.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

#: More families for a scrape, made by the caller at scrape time (the signing key's age).
DerivedFamilies = Callable[[], Iterable["Metric"]]

_FEED_READ: Final = "gateway_revocation_feed_last_read_timestamp_seconds"
_LIVE_GAUGE_FILE: Final = re.compile(r"^gauge_live\w+_(\d+)\.db$")


def fresh_multiprocess_dir() -> Path:
    """A new, empty directory only this user can enter (0700), for the workers' value files."""
    return Path(tempfile.mkdtemp(prefix="gateway-metrics-"))


def scrape(extra: DerivedFamilies | None = None) -> bytes:
    """The metrics as Prometheus text: summed over the workers under ``gateway serve``."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    path = os.environ.get(MULTIPROC_ENV)
    families: list[Metric]
    if path:
        _forget_dead_processes(Path(path))
        collector = MultiProcessCollector(None, path=path)  # type: ignore[no-untyped-call]
        families = list(collector.collect())  # type: ignore[no-untyped-call]
    else:
        metrics()  # defined, so registered, even before the first request counts
        families = list(REGISTRY.collect())
    families += _feed_lag(families, now=time.time())
    if extra is not None:
        families += extra()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


def age_family(name: str, documentation: str, since: float | None, *, now: float) -> Metric:
    """A gauge of the seconds from ``since`` (Unix time) to ``now``; no sample when unknown."""
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, documentation)
    if since is not None:
        family.add_metric([], max(0.0, now - since))
    return family


def _feed_lag(families: Iterable[Metric], *, now: float) -> list[Metric]:
    # The oldest read of any live process (the gauge's multiprocess mode is livemin); 0 is a
    # process whose feed has not read yet.
    reads = [
        sample.value
        for family in families
        if family.name == _FEED_READ
        for sample in family.samples
        if sample.value > 0
    ]
    return [
        age_family(
            "gateway_revocation_feed_lag_seconds",
            "Seconds since the revocation feed last read the store, in the process that read "
            "it longest ago.",
            min(reads) if reads else None,
            now=now,
        )
    ]


def _forget_dead_processes(path: Path) -> None:
    # A worker that died (and one Granian replaced) leaves its live gauges' files: its last feed
    # read would count as the oldest for ever. Its counters stay: they are part of the totals.
    from prometheus_client.multiprocess import mark_process_dead

    for name in os.listdir(path):
        match = _LIVE_GAUGE_FILE.match(name)
        if match and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                mark_process_dead(int(match.group(1)), str(path))  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Families:
    """A collector that yields families already collected."""

    __slots__ = ("_families",)

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families
