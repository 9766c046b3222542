"""Summary statistics of per-iteration samples, computed once here and reused by every report.

Percentiles use the nearest-rank method, as trtexec does: the p-th percentile is the smallest sample such that at
least p% of the samples are at or below it, so it is always a value that was actually measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

PERCENTILES = (90, 95, 99)


def nearest_rank(sorted_values: Sequence[float] | np.ndarray, percent: float) -> float:
    """The nearest-rank percentile of already-sorted values (0 < percent <= 100)."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("no samples")
    rank = max(1, math.ceil(percent / 100.0 * n))
    return float(sorted_values[min(rank, n) - 1])


def summarize(samples: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """min, mean, median, p90, p95, p99, max, stdev (sample, ddof=1), cv (stdev/mean) and count."""
    values = np.sort(np.asarray(samples, dtype=np.float64))
    n = int(values.size)
    if n == 0:
        raise ValueError("no samples to summarize")
    mean = float(values.mean())
    stdev = float(values.std(ddof=1)) if n > 1 else 0.0
    out: dict[str, float | int] = {
        "count": n,
        "min": float(values[0]),
        "mean": mean,
        "median": nearest_rank(values, 50),
        "max": float(values[-1]),
        "stdev": stdev,
        "cv": stdev / mean if mean > 0 else 0.0,
    }
    for p in PERCENTILES:
        out[f"p{p}"] = nearest_rank(values, p)
    return out


def compact_quantiles(samples: Sequence[float] | np.ndarray, points: int = 21) -> list[float]:
    """A fixed-size sketch of a distribution (nearest-rank quantiles at 0%, 5%, ..., 100%) for baselines."""
    values = np.sort(np.asarray(samples, dtype=np.float64))
    return [nearest_rank(values, max(p, 1e-9)) for p in np.linspace(0, 100, points)]
