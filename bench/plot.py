"""The latency distributions of a ``python -m bench.proxy`` run as one PNG of small plots.

Each panel shows one scenario: latency (log scale) against percentile, on an axis that gives
each "nine" the same width (50, 90, 99, 99.9), so the tail is as visible as the median.
matplotlib comes with the ``bench`` dependency group: ``uv run --group bench …``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PERCENTILES: tuple[float, ...] = (
    1, 5, 10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 97.5, 98, 99, 99.5, 99.9,
)  # fmt: skip
TICKS = (0, 50, 90, 99, 99.9)


@dataclass(frozen=True)
class Panel:
    title: str
    curves: dict[str, Sequence[float]]
    """Label → latency in ms at each of PERCENTILES."""


def nines(percentile: float) -> float:
    return -math.log10(1 - percentile / 100)


def plot_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_png(panels: Sequence[Panel], path: Path, *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(5.2 * columns, 3.6 * rows), squeeze=False, sharex=True
    )
    x = [nines(p) for p in PERCENTILES]
    for index, panel in enumerate(panels):
        axis = axes[index // columns][index % columns]
        for label, values in panel.curves.items():
            axis.plot(x, [max(v, 0.001) for v in values], marker=".", linewidth=1.4, label=label)
        axis.set_title(panel.title, fontsize=9)
        axis.set_yscale("log")
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.yaxis.set_minor_formatter(FuncFormatter(lambda value, _: ""))
        axis.set_xticks([nines(t) for t in TICKS], [f"p{t:g}" if t else "p0" for t in TICKS])
        axis.set_ylabel("latency (ms)", fontsize=8)
        axis.grid(True, which="both", alpha=0.3)
        axis.tick_params(labelsize=8)
        axis.legend(fontsize=7)
    for index in range(len(panels), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
