"""What the history store gives back: one series of a metric per (case, baseline key), oldest run first.

A new baseline key (another GPU, driver, backend or TensorRT version) is another series, never a step in this one:
change-point detection (:mod:`harness.history.changes`) and the trend plots work on one :class:`Series` at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Point:
    run_id: str
    time: str  # ISO 8601, UTC: when the run started
    commit: str | None  # the git commit the run measured, where known
    branch: str | None
    value: float  # the metric's value in this run (the case's median of trials for latency)
    trials: tuple[float, ...] = ()  # the metric's per-trial values, where recorded
    verdict: str | None = None  # the gate's verdict in that run


@dataclass(frozen=True)
class Series:
    suite: str
    case_id: str
    metric: str  # canonical metric name (harness.core.metrics)
    baseline_key: str  # hardware + backend + versions: one series never spans two
    points: tuple[Point, ...] = field(default=())

    @property
    def values(self) -> list[float]:
        return [p.value for p in self.points]
