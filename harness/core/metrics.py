"""The metrics a case reports, their units and which direction is better.

Names carry their unit (``_ms``, ``_sps`` = samples per second, ``_bytes``) so a number never travels without it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    label: str  # how messages and reports call it
    unit: str
    higher_is_better: bool = False
    short: str = ""  # for narrow places (the terminal's verdict column); the label when empty

    @property
    def brief(self) -> str:
        return self.short or self.label


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("latency_median_ms", "median latency", "ms", short="latency p50"),
        Metric("latency_mean_ms", "mean latency", "ms", short="latency mean"),
        Metric("latency_p90_ms", "p90 latency", "ms", short="latency p90"),
        Metric("latency_p95_ms", "p95 latency", "ms", short="latency p95"),
        Metric("latency_p99_ms", "p99 latency", "ms", short="latency p99"),
        Metric("throughput_sps", "throughput", "samples/s", higher_is_better=True),
        Metric("build_time_ms", "build time", "ms"),
        Metric("engine_bytes", "engine size", "bytes"),
    )
}

# Metrics the gate checks unless a suite says otherwise.
GATED_METRICS = ("latency_median_ms", "throughput_sps")

ALIASES = {
    "latency": "latency_median_ms",
    "median": "latency_median_ms",
    "p90": "latency_p90_ms",
    "p95": "latency_p95_ms",
    "p99": "latency_p99_ms",
    "throughput": "throughput_sps",
    "build_time": "build_time_ms",
    "engine_size": "engine_bytes",
}


def resolve_metric(name: str) -> str | None:
    """Map a metric name or its short alias to the canonical name; ``None`` if unknown."""
    if name in METRICS:
        return name
    return ALIASES.get(name)


def format_p_value(p: float) -> str:
    """``p=0.014``, or ``p<0.001`` where three decimals would print a misleading 0.000."""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def brief_label(metric: str) -> str:
    """``latency p50``, ``throughput``: a metric's short name (the raw name when unknown)."""
    return METRICS[metric].brief if metric in METRICS else metric


def format_nonfinite(value: float) -> str:
    """``NaN``, ``inf`` or ``-inf``: how every report writes a number that is not finite."""
    return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def format_change(change: float) -> str:
    """A relative change as ``+12.3%`` (``NaN`` when it is not a finite number)."""
    return f"{change:+.1%}" if math.isfinite(change) else format_nonfinite(change)


def format_ms(value: float | None) -> str:
    """A time in ms as 3 significant digits at any size, never in exponent form: ``0.0123``, ``1.23``, ``12.3``,
    ``123``, ``1230`` (``-`` for no value, ``NaN`` / ``inf`` for a number that is not finite). The one formatter of
    latencies for the terminal table, summary.md and report.html, so a case shows the same number everywhere."""
    import numpy as np

    if value is None:
        return "-"
    if not math.isfinite(value):
        return format_nonfinite(value)
    text = np.format_float_positional(value, precision=3, unique=False, fractional=False, trim="k")
    return text.rstrip(".")


def format_value(metric: str, value: float) -> str:
    """A metric's value with its unit: ``1.23 ms``, ``1,234.5 samples/s``, ``23.84 MiB``."""
    unit = METRICS[metric].unit if metric in METRICS else ""
    if not math.isfinite(value):
        return f"{format_nonfinite(value)} {unit}".strip()
    if unit == "ms" and metric.startswith("latency_"):
        return f"{format_ms(value)} ms"
    if unit == "ms":  # build times: whole tenths of a ms, as the build logs print them
        return f"{value:.3g} ms" if value < 100 else f"{value:.1f} ms"
    if unit == "samples/s":
        return f"{value:,.1f} samples/s"
    if unit == "bytes":
        return f"{value / 2**20:.2f} MiB"
    return f"{value:g}"
