"""Change points in one series: the runs where a metric moved to a new level, with the commits between and a p-value.

The method is Hunter's (Fleming et al. 2023, "Hunter: Using Change Point Detection to Hunt for Performance
Regressions", ICPE; the detector of Apache Otava, itself grown from MongoDB's use of E-divisive: Daly et al. 2020,
"The Use of Change Point Detection to Identify Software Performance Regressions in a Continuous Integration
System"): a first pass proposes candidate change points, then a merge pass tests each against its
neighbours' segments with Student's t-test and removes the weakest until every one left is significant and large
enough. The first pass here is PELT (Killick, Fearnhead & Eckley 2012, "Optimal Detection of Changepoints With a
Linear Computational Cost") on the logarithm of the values, from ``ruptures`` (Truong, Oudre & Vayatis 2020), in
place of Hunter's windowed E-divisive (Matteson & James 2014): exact for a penalised least-squares fit and
deterministic, with no permutation test to seed. Values are compared on a log scale because run-to-run noise is
multiplicative (a 2% spread at 1 ms and at 100 ms), so a step of +5% is one size wherever it happens.

The thresholds below were calibrated on synthetic series of 60 runs with 1-4% noise, analysed whole and night by
night (``benchmarks/perf/changepoints.py``; the figures are in docs/evidence/change-points.md).

A series holds one baseline key (:mod:`harness.history.series`): a new GPU, driver or TensorRT version is another
series, so it never shows up here as a step.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from harness.core.metrics import METRICS
from harness.history.series import Series

# A change point is reported when its t-test p-value is below this and the medians either side differ by at least
# MIN_CHANGE; WINDOW caps how many runs either side enter the test, so a change is judged against recent history
# (30 lost power on +3% and +5% steps at 2-4% noise against 60, with no fewer false change points).
# Hunter's default is 0.001; on series analysed night after night that let a run or two at the end pass for a new
# level in about one series in ten over 50 nights, 0.0001 in about one in a hundred, at the cost of one more run
# before a +5% step is caught.
MAX_P = 0.0001
MIN_CHANGE = 0.01
WINDOW = 60
# The fewest runs a level must hold: one run on its own is an outlier, not a level.
MIN_RUNS = 2
# First pass: PELT's penalty is PENALTY * noise variance * log(n), 1.5 times the Schwarz criterion's. The t-test
# does not know that its break was chosen as the best split of the noise, so the first pass must not propose too
# many: at 2 (Schwarz) noise alone kept a change point in about one series of 20 at p<0.001, at 3 in one of 50.
PENALTY = 3.0
# Noise scale floor (log units): a constant series (an engine's size) has none, and any step in it is a change.
NOISE_FLOOR = 1e-6


@dataclass(frozen=True)
class ChangePoint:
    """The metric moved between run ``index - 1`` and run ``index`` of its series (0-based, oldest first)."""

    index: int
    run_id: str  # the first run at the new level
    time: str
    commit_before: str | None  # the last run's commit at the old level: the change is in commit_before..commit
    commit: str | None
    before: float  # median of the runs before (up to WINDOW of them, back to the previous change point)
    after: float  # median of the runs after (up to WINDOW, up to the next change point)
    change: float  # after / before - 1
    p_value: float  # Student's t-test of the log values either side
    worse: bool  # the metric moved in its bad direction (latency up, throughput down)

    @property
    def commits(self) -> str:
        """``abc1234..def5678``: the commits that may hold the cause (``?`` where a run recorded none)."""
        return f"{_short(self.commit_before)}..{_short(self.commit)}"


def detect(
    series: Series,
    *,
    max_p: float = MAX_P,
    min_change: float = MIN_CHANGE,
    window: int = WINDOW,
    penalty: float = PENALTY,
) -> list[ChangePoint]:
    """The change points of ``series``, oldest first.

    Points whose value is not a positive finite number (a failed run) are left out of the analysis; the indices
    returned are still positions in ``series.points``.
    """
    kept = [i for i, p in enumerate(series.points) if math.isfinite(p.value) and p.value > 0]
    logs = [math.log(series.points[i].value) for i in kept]
    if len(logs) < 2 * MIN_RUNS:
        return []
    breaks = merge(logs, candidates(logs, penalty), max_p=max_p, min_change=min_change, window=window)
    higher_is_better = METRICS[series.metric].higher_is_better if series.metric in METRICS else False
    found = []
    for k, (at, p_value) in enumerate(breaks):
        left, right = _sides(logs, [b for b, _ in breaks], k, window)
        before, after = _median_value(left), _median_value(right)
        point, previous = series.points[kept[at]], series.points[kept[at - 1]]
        found.append(
            ChangePoint(
                index=kept[at],
                run_id=point.run_id,
                time=point.time,
                commit_before=previous.commit,
                commit=point.commit,
                before=before,
                after=after,
                change=after / before - 1,
                p_value=p_value,
                worse=(after < before) if higher_is_better else (after > before),
            )
        )
    return found


def noise_scale(logs: list[float]) -> float:
    """The noise's standard deviation, estimated from run-to-run differences by their median absolute deviation
    (robust to the steps themselves and to outliers; the estimator R's ``changepoint`` package uses)."""
    import numpy as np

    diffs = np.diff(np.asarray(logs))
    mad = float(np.median(np.abs(diffs - np.median(diffs))))
    return max(mad / (0.6745 * math.sqrt(2)), NOISE_FLOOR)


def candidates(logs: list[float], penalty: float = PENALTY) -> list[int]:
    """First pass: where PELT on the log values places breaks (each the index of the first run of a new level)."""
    import numpy as np
    import ruptures

    signal = np.asarray(logs)
    cost = penalty * noise_scale(logs) ** 2 * math.log(len(logs))
    # KernelCPD with the linear kernel is PELT on the least-squares cost, in ruptures' C code (its Pelt class is
    # the same search in Python, a hundred times slower, with the same breaks).
    found = ruptures.KernelCPD(kernel="linear", min_size=MIN_RUNS, jump=1).fit(signal).predict(pen=cost)
    return [int(b) for b in found[:-1]]  # ruptures ends the list with len(signal)


def merge(
    logs: list[float], breaks: list[int], *, max_p: float, min_change: float, window: int
) -> list[tuple[int, float]]:
    """Hunter's merge pass: while a break's segments do not differ (p-value at or above ``max_p``, or medians less
    than ``min_change`` apart), remove the weakest one and test its neighbours again against their new segments.
    Returns ``(index, p_value)`` for each break left."""
    breaks = sorted(breaks)
    tests = [_test(logs, breaks, k, window) for k in range(len(breaks))]
    while breaks:
        failing = [k for k, (p, size) in enumerate(tests) if p >= max_p or size < min_change]
        if not failing:
            return [(b, p) for b, (p, _) in zip(breaks, tests, strict=True)]
        # The weakest: the largest p-value among those not significant, else the smallest change.
        weakest = max(failing, key=lambda k: (tests[k][0] >= max_p, tests[k][0], -tests[k][1]))
        del breaks[weakest], tests[weakest]
        # Only the two neighbours' segments changed: they now reach across the removed break.
        for k in (weakest - 1, weakest):
            if 0 <= k < len(breaks):
                tests[k] = _test(logs, breaks, k, window)
    return []


def _sides(logs: list[float], breaks: list[int], k: int, window: int) -> tuple[list[float], list[float]]:
    """The log values either side of break ``k``: back to the previous break and on to the next, at most
    ``window`` each."""
    start = breaks[k - 1] if k > 0 else 0
    stop = breaks[k + 1] if k + 1 < len(breaks) else len(logs)
    at = breaks[k]
    return logs[max(start, at - window) : at], logs[at : min(stop, at + window)]


def _test(logs: list[float], breaks: list[int], k: int, window: int) -> tuple[float, float]:
    """(p-value, |relative change of the medians|) of break ``k``: Student's t-test from the two sides' means and
    standard deviations, as Hunter computes it (scipy's ``ttest_ind_from_stats``)."""
    from scipy import stats

    left, right = _sides(logs, breaks, k, window)
    size = abs(_median_value(right) / _median_value(left) - 1)
    if len(left) < 2 or len(right) < 2:
        return 1.0, size
    sides = [(statistics.fmean(side), statistics.stdev(side), len(side)) for side in (left, right)]
    p = float(stats.ttest_ind_from_stats(*sides[0], *sides[1]).pvalue)
    if math.isnan(p):  # both sides constant: a difference is certain, no difference is none
        p = 0.0 if size > 0 else 1.0
    return p, size


def _median_value(logs: list[float]) -> float:
    return math.exp(statistics.median(logs))


def _short(commit: str | None) -> str:
    return commit[:10] if commit else "?"
