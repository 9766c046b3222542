"""Which numbers the plots draw: cases grouped into series by precision, the finite values among a case's latencies
and the baseline's spread. harness.report.plots only draws what these return.

A value that is not a finite number (NaN, infinity: a hand-edited results file, a broken measurement) is never
returned for drawing; :func:`not_finite_ids` names the cases that lost a point, for the caption.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from harness.view.cases import CaseView

# Fixed order of the usual precisions: series are listed (and coloured, by harness.report.plots) in this order.
PRECISION_ORDER = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8", "int4", "fp4")


def precision_series(cases: Iterable[CaseView]) -> dict[str, list[CaseView]]:  # batch_size is never None in a series
    """Cases grouped by precision (and shape when a model has several), each sorted by batch size."""
    cases = [c for c in cases if c.batch_size is not None and c.case.metrics]
    shapes = {c.shape for c in cases}
    groups: dict[str, list[CaseView]] = {}
    for case in cases:
        name = case.precision + (f" {case.shape}" if len(shapes) > 1 and case.shape else "")
        groups.setdefault(name, []).append(case)

    def order(name: str) -> tuple[int, str]:
        head = name.split()[0]
        return (PRECISION_ORDER.index(head) if head in PRECISION_ORDER else len(PRECISION_ORDER), name)

    return {k: sorted(groups[k], key=lambda c: c.batch_size or 0) for k in sorted(groups, key=order)}


def finite(value: Any) -> float | None:
    """``value`` as a float when it can be drawn (a finite number), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def latency(case: CaseView, key: str) -> float | None:
    """The case's latency statistic ``key`` (min, median, p99) in ms, from its statistics or its metrics."""
    stats = case.case.stats.get("latency_ms") or {}
    value = stats.get(key)
    if value is None:
        value = case.metric({"median": "latency_median_ms", "p99": "latency_p99_ms"}.get(key, ""))
    return finite(value)


def not_finite_ids(cases: list[CaseView]) -> list[str]:
    """Ids of cases holding a plotted number that is not finite (their points are left out)."""
    out = []
    for case in cases:
        stats = case.case.stats.get("latency_ms") or {}
        values = [stats.get(k) for k in ("min", "median", "p99")]
        values += [case.case.metrics.get(k) for k in ("latency_median_ms", "latency_p99_ms", "throughput_sps")]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            out.append(case.id)
    return out


def baseline_spread(case: CaseView) -> tuple[float, float, float] | None:
    """(min, median, p99) latency of the baseline, from its statistics or its quantile sketch."""
    baseline = case.case.baseline or {}
    stats = (baseline.get("stats") or {}).get("latency_ms") or {}
    sketch = baseline.get("latency_quantiles_ms")
    median = (baseline.get("metrics") or {}).get("latency_median_ms")
    candidates = [(stats.get("min"), stats.get("median"), stats.get("p99"))]
    if isinstance(sketch, list) and len(sketch) >= 3:
        candidates.append((sketch[0], sketch[len(sketch) // 2], sketch[-2]))
    candidates.append((median, median, median))
    for lo, mid, hi in candidates:  # the first complete, finite spread
        lo, mid, hi = finite(lo), finite(mid), finite(hi)
        if lo is not None and mid is not None and hi is not None:
            return lo, mid, hi
    return None
