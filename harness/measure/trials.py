"""Trials: a case is measured as several independent trials, and variants are interleaved round by round.

A trial is one call of :func:`harness.measure.loop.measure` on a fresh runner, with its own warm-up. The engine is built
once per case and shared by the trials: a rebuild would, for TensorRT, cost minutes and return the same engine from
the content-addressed cache anyway, while what varies between runs on one build (allocations, caches, clocks, the
neighbours' load) is re-sampled by fresh runners and fresh warm-ups. Build-to-build variation is captured by the
baseline, which comes from another build.

The suite's measurement budget is shared by the trials, so trials cost little extra time: every trial measures
``min_duration_ms / trials`` and ``min_iterations / trials`` (at least :data:`MIN_TRIAL_ITERATIONS`); the first trial
warms up for ``warmup_ms`` (cold start), the later ones for ``warmup_ms / trials`` (the engine is already warm).
A/B mode splits each variant's budget into more, shorter trials (harness.run.ab.AB_PAIRS), since pairs resolve a change
better the more of them there are.

:func:`measure_rounds` interleaves variants (A/B, or the conditions of ``harness calibrate``): round r measures one
trial of every variant, in reverse order on odd rounds (A B, B A, ...), so slow drift of the machine and position
effects fall equally on every variant. Under pytest, the cases of a CPU backend are interleaved the same way before
their items report (harness.run.session.HarnessSession.measure_interleaved); A/B mode interleaves the two variants of
each case.

:class:`SlowedRunner` is the calibrated slowdown of ``--simulate-slowdown``: after each inference it busy-waits
(FACTOR - 1) x the time that inference took, so every host-side timing sees a slowdown of FACTOR.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from harness.backends.base import Runner, RunnerBase
from harness.core.measurement import CV_WARN, Measurement
from harness.core.stats import nearest_rank
from harness.measure.probe import probe_ms
from harness.suite.schema import MeasureSpec

MIN_TRIAL_ITERATIONS = 3
# Per-trial values kept for the gate and the baseline (the gate compares these across runs). On CPU backends also
# ``cpu_ms`` (process CPU time per inference, which a busy neighbour hardly inflates), ``cpu_share`` (CPU time /
# wall time: below its usual value the runner was contended) and ``neighbour_cores`` (CPU used by other processes
# during the trial, in cores, from /proc/stat) and ``probe_ms`` (the runner's own speed around the trial,
# harness.measure.probe).
TRIAL_METRICS = ("latency_median_ms", "latency_mean_ms", "latency_p90_ms", "throughput_sps")

Measure = Callable[[int, Runner, MeasureSpec], Measurement]  # (variant index, its runner, the trial's settings)


def trial_spec(spec: MeasureSpec, index: int, trials: int | None = None) -> MeasureSpec:
    """The measurement settings of trial ``index`` (0-based) of ``trials`` (default ``spec.trials``)."""
    n = max(1, trials or spec.trials)
    return replace(
        spec,
        warmup_ms=spec.warmup_ms if index == 0 else spec.warmup_ms / n,
        min_duration_ms=spec.min_duration_ms / n,
        min_iterations=max(MIN_TRIAL_ITERATIONS if n > 1 else 1, math.ceil(spec.min_iterations / n)),
        max_duration_ms=spec.max_duration_ms / n,
        trials=1,
    )


class SlowedRunner(RunnerBase):
    """Wraps a runner so each inference takes ``factor`` times as long: a busy-wait of (factor - 1) x its latency.

    Busy-waiting (not sleeping) keeps the thread on the CPU, as a slower kernel would, and is exact to the clock's
    resolution; the extra time is proportional to each inference, so the whole latency distribution scales.
    """

    def __init__(self, runner: Runner, factor: float) -> None:
        if factor < 1.0:
            raise ValueError("a slowdown factor is >= 1.0")
        self.runner = runner
        self.factor = factor

    def step(self) -> dict[str, float] | None:
        clock = time.perf_counter_ns
        t0 = clock()
        timings = self.runner.step()
        t1 = clock()
        until = t1 + int((t1 - t0) * (self.factor - 1.0))
        while clock() < until:
            pass
        return timings

    def outputs(self) -> Any:
        return self.runner.outputs()

    def close(self) -> None:
        self.runner.close()


def measure_rounds(
    variants: Sequence[Callable[[], Runner]],
    spec: MeasureSpec,
    rounds: int,
    measure: Measure,
    on_trial: Callable[[int, int, Measurement], None] | None = None,
    cpu_time: bool = False,
    split: int | None = None,
    probe: bool = True,
) -> list[list[Measurement]]:
    """``rounds`` trials of every variant, interleaved (A B / B A / ...); returns trials per variant. Each trial is
    as long as one of ``split`` trials sharing the measuring budget (default ``spec.trials``: one of a case's
    trials; see :func:`trial_spec`), whatever the number of rounds.

    Each variant is a callable opening a fresh runner; the runner is closed after its trial. ``on_trial(variant,
    round, measurement)`` is called after every trial (progress output). Without ``cpu_time`` (GPU backends) the
    measurements' process CPU time is dropped, so the gate does not use it. With ``cpu_time`` and ``probe`` the
    speed probe is timed around every trial (comparisons across runs need it; pairs of one job do not: the
    runner's speed cancels in each pair's ratio).
    """
    out: list[list[Measurement]] = [[] for _ in variants]
    for r in range(rounds):
        order = range(len(variants)) if r % 2 == 0 else reversed(range(len(variants)))
        for v in order:
            runner = variants[v]()
            try:
                before = probe_ms() if cpu_time and probe else None
                m = measure(v, runner, trial_spec(spec, r, split))
                if before is not None:  # the runner's own speed around the trial (harness.measure.probe)
                    m.probe_ms = (before + probe_ms()) / 2
            finally:
                runner.close()
            if not cpu_time:  # a GPU backend waits for the device: its CPU time says nothing about contention
                m.cpu_ms = m.host_busy_ms = None
            out[v].append(m)
            if on_trial is not None:
                on_trial(v, r, m)
    return out


@dataclass
class TrialSet:
    """The trials of one case (or one variant): pooled samples for the report, per-trial values for the gate."""

    batch_size: int
    measurements: list[Measurement]

    @property
    def latency_ms(self) -> list[float]:
        return [v for m in self.measurements for v in m.latency_ms]

    @property
    def extra_ms(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for m in self.measurements:
            for name, values in m.extra_ms.items():
                out.setdefault(name, []).extend(values)
        return out

    @property
    def wall_ms(self) -> float:
        return sum(m.wall_ms for m in self.measurements)

    @property
    def throughput_sps(self) -> float:
        """Samples per second over all measured loops together."""
        return self.batch_size * len(self.latency_ms) / (self.wall_ms / 1e3)

    def per_trial(self) -> dict[str, list[float]]:
        """Metric -> one value per trial (see :data:`TRIAL_METRICS`)."""
        out: dict[str, list[float]] = {name: [] for name in TRIAL_METRICS}
        for m in self.measurements:
            values = np.sort(np.asarray(m.latency_ms, dtype=np.float64))
            out["latency_median_ms"].append(nearest_rank(values, 50))
            out["latency_mean_ms"].append(float(values.mean()))
            out["latency_p90_ms"].append(nearest_rank(values, 90))
            out["throughput_sps"].append(m.throughput_sps)
        if self.measurements and all(m.cpu_ms is not None for m in self.measurements):
            out["cpu_ms"] = [float(m.cpu_ms or 0.0) / m.iterations for m in self.measurements]
            out["cpu_share"] = [float(m.cpu_share or 0.0) for m in self.measurements]
        if self.measurements and all(m.probe_ms is not None for m in self.measurements):
            out["probe_ms"] = [float(m.probe_ms or 0.0) for m in self.measurements]
        if self.measurements and all(m.cpu_ms is not None and m.host_busy_ms is not None for m in self.measurements):
            out["neighbour_cores"] = [
                max(0.0, (float(m.host_busy_ms or 0.0) - float(m.cpu_ms or 0.0)) / m.wall_ms) for m in self.measurements
            ]
        return out

    def facts(self) -> dict[str, Any]:
        """What the trials were: count, iterations and wall time per trial, warm-up totals."""
        return {
            "trials": len(self.measurements),
            "iterations": len(self.latency_ms),
            "wall_ms": self.wall_ms,
            "trial_iterations": [m.iterations for m in self.measurements],
            "trial_wall_ms": [round(m.wall_ms, 3) for m in self.measurements],
            "warmup_iterations": sum(m.warmup_iterations for m in self.measurements),
            "warmup_ms": sum(m.warmup_ms for m in self.measurements),
            "cpu_share": [round(m.cpu_share, 4) for m in self.measurements if m.cpu_share is not None],
        }

    def warnings(self) -> list[str]:
        out: list[str] = []
        for m in self.measurements:
            out.extend(w for w in m.warnings() if w not in out and not w.startswith("latency CV"))
        cvs = [
            float(np.std(m.latency_ms, ddof=1) / np.mean(m.latency_ms)) for m in self.measurements if m.iterations > 1
        ]
        if cvs:
            worst = max(cvs)
            if worst > CV_WARN:
                out.insert(
                    0,
                    f"latency CV up to {worst:.1%} within a trial exceeds {CV_WARN:.1%}: the machine is noisy or "
                    "the case too short; the gate compares trials, so noise widens its interval",
                )
        return out
