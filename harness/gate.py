"""The gate: one verdict per case from its metrics, its baseline and its tolerances.

This module is the only place that decides pass or fail. Today it compares each gated metric with the baseline
against a relative tolerance; the noise-aware statistics replace :func:`judge` here without touching the callers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from harness.metrics import GATED_METRICS, METRICS, format_value

# regressed fails the case; the others pass. "new": no baseline for this case; "missing": a baseline case that did
# not run (reports only).
VERDICTS = ("regressed", "improved", "unchanged", "new", "missing")
FAILING = frozenset({"regressed"})


@dataclass(frozen=True)
class Comparison:
    metric: str
    current: float
    baseline: float
    change: float  # relative: +0.187 == 18.7 % higher than the baseline
    tolerance: float
    verdict: str  # regressed / improved / unchanged

    def describe(self, case_id: str) -> str:
        """E.g. ``squeezenet-fp32-b4: median latency 41.2 ms vs baseline 34.7 ms (+18.7% > tolerance 10%)``."""
        label = METRICS[self.metric].label if self.metric in METRICS else self.metric
        relation = ">" if abs(self.change) > self.tolerance else "<="
        return (
            f"{case_id}: {label} {format_value(self.metric, self.current)} vs baseline "
            f"{format_value(self.metric, self.baseline)} ({self.change:+.1%} {relation} tolerance "
            f"{self.tolerance:.0%})"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    comparisons: tuple[Comparison, ...]
    message: str

    @property
    def failed(self) -> bool:
        return self.verdict in FAILING


def tolerance_for(metric: str, tolerance: dict[str, float]) -> float:
    return tolerance.get(metric, tolerance.get("default", 0.10))


def compare_metric(metric: str, current: float, baseline: float, tolerance: float) -> Comparison:
    change = (current - baseline) / baseline if baseline else 0.0
    worse = -change if METRICS[metric].higher_is_better else change
    if worse > tolerance:
        verdict = "regressed"
    elif -worse > tolerance:
        verdict = "improved"
    else:
        verdict = "unchanged"
    return Comparison(metric, current, baseline, change, tolerance, verdict)


def judge(
    case_id: str,
    metrics: dict[str, float],
    baseline: dict[str, float] | None,
    tolerance: dict[str, float],
    gated: tuple[str, ...] = GATED_METRICS,
) -> Verdict:
    """Compare every gated metric present on both sides; regressed if any regressed, improved if any improved."""
    if baseline is None:
        return Verdict("new", (), f"{case_id}: no baseline yet; run with --update-baselines to record one")
    comparisons = tuple(
        compare_metric(m, metrics[m], baseline[m], tolerance_for(m, tolerance))
        for m in gated
        if m in metrics and baseline.get(m) is not None
    )
    if not comparisons:
        return Verdict("new", (), f"{case_id}: the baseline has none of the gated metrics {list(gated)}")
    regressed = [c for c in comparisons if c.verdict == "regressed"]
    improved = [c for c in comparisons if c.verdict == "improved"]
    if regressed:
        return Verdict("regressed", comparisons, "\n".join(c.describe(case_id) for c in regressed))
    if improved:
        return Verdict("improved", comparisons, "\n".join(c.describe(case_id) for c in improved))
    return Verdict("unchanged", comparisons, "")
