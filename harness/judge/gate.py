"""The gate: one verdict per case from its trials, its baseline's trials and its tolerances.

This module is the only place that decides pass or fail. Shared runners drift, so one number against one saved
number (pytest-benchmark's ``--benchmark-compare-fail=median:5%``) cries wolf; the gate asks these questions per
gated metric and says ``regressed`` only when every answer is yes:

1. Does the change exceed the tolerance? The change is the ratio of the medians of the per-trial values
   (current / baseline), so a single outlier trial on either side cannot move it much.
2. Is it distinguishable from run-to-run noise? A one-sided Mann-Whitney U test on the per-trial values (each trial
   is an independent measurement with its own warm-up) at level ``alpha`` (default 5%). Rank tests are exact at the
   small sample sizes a CI job can afford (5 trials a side), need no normality (timings are skewed and often
   bimodal), and are invariant to the log / ratio scale. The interval reported with each comparison is the
   distribution-free confidence interval for the shift of log values that inverts the same test (the
   Hodges-Lehmann / Moses interval), so "significant" and "the interval excludes 0" agree.
3. On CPU backends, is the change the code's? Slower code needs more CPU time per inference; a busy neighbour takes
   the CPU away and stretches wall-clock time instead. Each trial records the process's CPU time, so a change counts
   only if CPU time per inference moved the same way; when a side ran with less CPU share than the other
   (contention), the verdict comes from CPU time alone, with an allowance for what contention itself adds to it
   (:func:`_with_cpu_evidence`). And was the runner itself slower? A host can slow a virtual machine down with no
   trace inside it; a fixed workload timed around every trial (harness.measure.probe) shows it. Every trial's times are
   scaled by that trial's probe reading to the baseline's runner speed before the questions above are asked
   (:func:`_at_baseline_speed`): the probe's level follows the cases' level from one process to the next, so
   dividing by it takes the host's share out of the run-to-run spread of a case's median (the figures are in
   docs/evidence/gate-calibration-dev-vm.md).

Why not a bootstrap interval of the ratio of medians: with 5 trials a side the percentile bootstrap of a median has
only a handful of distinct values and undercovers (Efron & Tibshirani 1993, ch. 13 and 19); the rank interval has
exact coverage at any sample size.

Verdicts per metric: ``regressed`` / ``improved`` (beyond tolerance and significant), ``ambiguous`` (beyond tolerance
but not significant, or too few trials on a side to test: flagged, fails only with ``--fail-on-ambiguous``),
``unchanged``. Per case: ``regressed`` if any metric regressed, else ``ambiguous``, else ``improved``, else
``unchanged``; ``new`` (no baseline) and ``missing`` (a baseline case that did not run) come from the store.
Deterministic metrics (engine size) are compared with the tolerance alone.

Confirmation (:func:`confirm`): a case that looks regressed is measured again; it fails only when the second,
independent measurement also says regressed, otherwise it is ``ambiguous``. With two independent tests at ``alpha``
a chance alarm needs both, so one transient outlier (a neighbour's job, a page-cache flush) does not fail a PR.

A/B (:func:`judge_paired`): two variants measured in one job, interleaved A B B A ..., give paired trials; the verdict
uses the log ratios of the pairs (drift common to both variants cancels in each ratio): Wilcoxon signed-rank test,
median of the ratios as the estimate, Tukey's Walsh-average interval.

Sources:
- H. B. Mann, D. R. Whitney (1947), On a test of whether one of two random variables is stochastically larger than
  the other. Ann. Math. Statist. 18(1).
- J. L. Hodges, E. L. Lehmann (1963), Estimates of location based on rank tests. Ann. Math. Statist. 34(2).
- D. F. Bauer (1972), Constructing confidence sets using rank statistics. JASA 67(339).
- F. Wilcoxon (1945), Individual comparisons by ranking methods. Biometrics Bulletin 1(6).
- M. Hollander, D. A. Wolfe, E. Chicken (2014), Nonparametric Statistical Methods, 3rd ed., sections 3.1-3.3, 4.1-4.3.
- J. Chen, J. Revels (2016), Robust benchmarking in noisy environments. arXiv:1608.04295 (why trials, why
  robust location estimates).
- B. Efron, R. Tibshirani (1993), An Introduction to the Bootstrap. Chapman & Hall.
- T. Mytkowicz, A. Diwan, M. Hauswirth, P. F. Sweeney (2009), Producing wrong data without doing anything obviously
  wrong! ASPLOS (why one process's trials understate run-to-run variation: ``harness calibrate`` uses a process per
  simulated run, and the tolerance must cover that variation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np

from harness.core.metrics import GATED_METRICS, METRICS, format_p_value, format_value

# "regressed" fails the case; "ambiguous" fails only with --fail-on-ambiguous; the others pass. "new": no baseline
# for this case; "missing": a baseline case that did not run (reports only).
VERDICTS = ("regressed", "ambiguous", "improved", "unchanged", "new", "missing")
FAILING = frozenset({"regressed"})
ALPHA = 0.05  # one-sided level of each test; with confirmation a chance alarm needs two such tests
MIN_TRIALS = 2  # fewer per side cannot be tested: a change beyond tolerance is then ambiguous
DETERMINISTIC = frozenset({"engine_bytes"})  # metrics without run-to-run noise: the tolerance alone decides
# --build-only: a build is one sample per side (a CI job cannot afford several builds of every engine), so build time
# is judged by its tolerance alone, which is this wide unless the suite sets one for `build_time`: builds of one
# engine on one runner vary far more than its latency does (tactic timing, neighbours), and a slower builder or a
# model that now takes twice as long shows anyway (docs/tensorrt.md, --build-only).
BUILD_TIME_TOLERANCE = 0.5
CPU_METRIC = "cpu_ms"  # per-trial process CPU time per inference (harness.measure.trials), recorded on CPU backends
CPU_SHARE = "cpu_share"  # per-trial process CPU time / wall time (harness.measure.trials)
CONTENDED = 0.9  # a side whose median CPU share is below 90 % of the best trial's ran on a contended runner
# How much contention inflates CPU time per inference of unchanged code, per unit of CPU share lost (relative to the
# best trial), and per core of CPU that other processes used: a contended comparison needs this much on top of the
# tolerance, since sharing caches and memory bandwidth slows the code itself, not only its wall-clock time. Both are
# set a margin above what was measured (docs/evidence/gate-calibration-dev-vm.md, "CPU-time allowances").
CONTENTION_SLOPE = 0.35
NEIGHBOUR_SLOPE = 0.12
NEIGHBOUR_DELTA = 0.3  # cores: a difference of neighbour load from which the two sides ran on different runners
NEIGHBOURS = "neighbour_cores"  # per-trial CPU used by other processes, cores (harness.measure.trials)
PROBE = "probe_ms"  # per-trial time of the fixed speed-probe workload (harness.measure.probe), recorded on CPU backends
PROBE_NOISE = 0.03  # the probe's own reading-to-reading spread: a runner speed change smaller than this is not noted
# Per-trial metrics that are times (scaled by the runner's speed) and rates (scaled inversely) for the probe.
TIME_METRICS = frozenset({"latency_median_ms", "latency_mean_ms", "latency_p90_ms", "cpu_ms"})
RATE_METRICS = frozenset({"throughput_sps"})
NAIVE_THRESHOLD = 0.05  # pytest-benchmark's --benchmark-compare-fail=median:5%, the reference in `harness calibrate`


@dataclass(frozen=True)
class Comparison:
    metric: str
    current: float  # median of the current trial values (or the single value)
    baseline: float  # median of the baseline trial values
    change: float  # relative: +0.187 == 18.7 % higher than the baseline
    tolerance: float
    verdict: str  # regressed / ambiguous / improved / unchanged
    ci_low: float | None = None  # confidence interval of the relative change, (1 - 2 alpha) two-sided
    ci_high: float | None = None
    p_value: float | None = None  # one-sided, in the direction of the observed change
    trials: tuple[int, int] = (1, 1)  # (current, baseline) number of values compared; pairs for A/B
    method: str = "tolerance"  # mann-whitney / wilcoxon-paired / tolerance
    note: str = ""  # why a change beyond tolerance was not taken as a regression or an improvement

    def describe(self, case_id: str, against: str = "baseline") -> str:
        """E.g. ``squeezenet-fp32-b4: median latency 41.2 ms vs baseline 34.7 ms (+18.7% > tolerance 10%; ...)``."""
        label = METRICS[self.metric].label if self.metric in METRICS else self.metric
        relation = ">" if abs(self.change) > self.tolerance else "<="
        text = (
            f"{case_id}: {label} {format_value(self.metric, self.current)} vs {against} "
            f"{format_value(self.metric, self.baseline)} ({self.change:+.1%} {relation} tolerance "
            f"{self.tolerance:.0%}"
        )
        if self.method == "tolerance":
            return text + ")"
        if self.p_value is None:
            return text + f"; {self.trials[0]} vs {self.trials[1]} trials: too few to tell from noise)"
        interval = ""
        if self.ci_low is not None and self.ci_high is not None and math.isfinite(self.ci_low + self.ci_high):
            interval = f", interval {self.ci_low:+.1%}..{self.ci_high:+.1%}"
        noun = "pairs" if self.method == "wilcoxon-paired" else "trials"
        sizes = f"{self.trials[0]} {noun}" if noun == "pairs" else f"{self.trials[0]} vs {self.trials[1]} trials"
        return text + f"; {format_p_value(self.p_value)}{interval}, {sizes})" + (f" [{self.note}]" if self.note else "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    verdict: str
    comparisons: tuple[Comparison, ...]
    message: str
    first: Verdict | None = field(default=None, repr=False)  # the measurement that triggered a confirmation

    @property
    def failed(self) -> bool:
        return self.verdict in FAILING

    def fails(self, fail_on_ambiguous: bool = False) -> bool:
        return self.verdict in FAILING or (fail_on_ambiguous and self.verdict == "ambiguous")


def tolerance_for(metric: str, tolerance: dict[str, float]) -> float:
    return tolerance.get(metric, tolerance.get("default", 0.10))


# -- exact null distributions of the rank statistics ------------------------------------------------------------
@lru_cache(maxsize=256)
def _mann_whitney_counts(m: int, n: int) -> tuple[int, ...]:
    """Number of orderings of m + n values giving U = 0 .. m*n (no ties): the exact null distribution of U."""
    # f(m, n)[u] = f(m - 1, n)[u - n] + f(m, n - 1)[u]: the largest value is either an x (beating all n y's) or a y.
    if m == 0 or n == 0:
        return (1,)
    out = [0] * (m * n + 1)
    for u, c in enumerate(_mann_whitney_counts(m - 1, n)):
        out[u + n] += c
    for u, c in enumerate(_mann_whitney_counts(m, n - 1)):
        out[u] += c
    return tuple(out)


@lru_cache(maxsize=256)
def _signed_rank_counts(n: int) -> tuple[int, ...]:
    """Number of sign patterns of ranks 1..n giving the signed-rank sum T+ = 0 .. n(n+1)/2."""
    out = [1]
    for rank in range(1, n + 1):
        grown = [*out, *([0] * rank)]
        for t, c in enumerate(out):
            grown[t + rank] += c
        out = grown
    return tuple(out)


def _critical_rank(counts: Sequence[int], tail: float) -> int:
    """Largest k >= 0 with P(stat <= k - 1) <= tail. The test rejects "no shift" one-sidedly when at most k - 1
    pairwise differences fall on the other side of 0, so the interval is order statistics k .. N + 1 - k (1-based)."""
    total = float(sum(counts))
    cumulative, k = 0.0, 0
    for c in counts:
        if (cumulative + c) / total > tail:
            break
        cumulative += c
        k += 1
    return k


def _interval(values: np.ndarray, k: int) -> tuple[float, float]:
    """Order statistics k and N + 1 - k (1-based) of ``values``: the rank-test interval; infinite when k == 0."""
    if k <= 0:
        return -math.inf, math.inf
    ordered = np.sort(values)
    return float(ordered[k - 1]), float(ordered[len(ordered) - k])


def _rel(log_shift: float) -> float:
    return math.expm1(log_shift) if math.isfinite(log_shift) else log_shift


# -- two independent samples: baseline trials vs current trials -------------------------------------------------
def shift_test(current: Sequence[float], baseline: Sequence[float], alpha: float = ALPHA) -> dict[str, float]:
    """Mann-Whitney on log values: one-sided p for "current larger" and "current smaller", and the (1 - 2 alpha)
    distribution-free interval of the relative change (inverting the same test)."""
    from scipy.stats import mannwhitneyu  # heavy: imported only when a comparison is made

    x = np.log(np.asarray(current, dtype=np.float64))
    y = np.log(np.asarray(baseline, dtype=np.float64))
    method = (
        "exact"
        if len(x) * len(y) <= 2500 and len(np.unique(np.concatenate([x, y]))) == len(x) + len(y)
        else "asymptotic"
    )
    greater = float(mannwhitneyu(x, y, alternative="greater", method=method).pvalue)
    less = float(mannwhitneyu(x, y, alternative="less", method=method).pvalue)
    differences = np.subtract.outer(x, y).ravel()
    if len(x) * len(y) <= 2500:
        k = _critical_rank(_mann_whitney_counts(len(x), len(y)), alpha)
    else:  # normal approximation of U's null distribution
        from scipy.stats import norm

        mean, sd = len(x) * len(y) / 2, math.sqrt(len(x) * len(y) * (len(x) + len(y) + 1) / 12)
        k = max(0, math.floor(mean + norm.ppf(alpha) * sd))
    low, high = _interval(differences, k)
    return {"p_greater": greater, "p_less": less, "ci_low": _rel(low), "ci_high": _rel(high)}


def _tested_verdict(
    worse: float, change: float, tolerance: float, test: dict[str, float], higher_is_better: bool, alpha: float
) -> tuple[str, float]:
    """Verdict and one-sided p-value (in the direction of the change) from a rank test's ``p_less`` / ``p_greater``:
    beyond the tolerance and significant is regressed / improved, beyond it but not significant ambiguous."""
    p_worse = test["p_less"] if higher_is_better else test["p_greater"]
    p_better = test["p_greater"] if higher_is_better else test["p_less"]
    if worse > tolerance:
        verdict = "regressed" if p_worse <= alpha else "ambiguous"
    elif -worse > tolerance:
        verdict = "improved" if p_better <= alpha else "ambiguous"
    else:
        verdict = "unchanged"
    return verdict, test["p_greater"] if change >= 0 else test["p_less"]


def compare_trials(
    metric: str,
    current: Sequence[float],
    baseline: Sequence[float],
    tolerance: float,
    alpha: float = ALPHA,
    deterministic: bool = False,
) -> Comparison:
    """One metric: per-trial values of this run against those of the baseline. A ``deterministic`` metric (or one in
    :data:`DETERMINISTIC`) is decided by the tolerance alone."""
    cur, base = float(np.median(current)), float(np.median(baseline))
    change = (cur - base) / base if base else 0.0
    higher_is_better = METRICS[metric].higher_is_better if metric in METRICS else False
    worse = -change if higher_is_better else change
    sizes = (len(current), len(baseline))
    if deterministic or metric in DETERMINISTIC:
        verdict = "regressed" if worse > tolerance else "improved" if -worse > tolerance else "unchanged"
        return Comparison(metric, cur, base, change, tolerance, verdict, trials=sizes)
    if min(sizes) < MIN_TRIALS or base <= 0 or cur <= 0:
        verdict = "ambiguous" if abs(change) > tolerance else "unchanged"
        return Comparison(metric, cur, base, change, tolerance, verdict, trials=sizes, method="mann-whitney")
    test = shift_test(current, baseline, alpha)
    verdict, p_value = _tested_verdict(worse, change, tolerance, test, higher_is_better, alpha)
    return Comparison(
        metric, cur, base, change, tolerance, verdict, test["ci_low"], test["ci_high"], p_value, sizes, "mann-whitney"
    )


def judge(
    case_id: str,
    metrics: dict[str, float],
    baseline: dict[str, float] | None,
    tolerance: dict[str, float],
    gated: tuple[str, ...] = GATED_METRICS,
    *,
    trials: dict[str, list[float]] | None = None,
    baseline_trials: dict[str, list[float]] | None = None,
    alpha: float = ALPHA,
) -> Verdict:
    """Compare every gated metric present on both sides. Per-trial values (``trials``, ``baseline_trials``: metric
    -> one value per trial) are used where present; a side without them counts as one trial of its metric value."""
    if baseline is None:
        return Verdict("new", (), f"{case_id}: no baseline yet; run with --update-baselines to record one")
    unusable = _unusable(gated, metrics, baseline)
    metrics, baseline = _finite_values(metrics), _finite_values(baseline)
    raw = _finite_series(trials or {})
    trials, baseline_trials, runner_change = _at_baseline_speed(raw, _finite_series(baseline_trials or {}))
    comparisons = tuple(
        compare_trials(
            m,
            trials.get(m) or [metrics[m]],
            baseline_trials.get(m) or [baseline[m]],
            tolerance_for(m, tolerance),
            alpha,
        )
        for m in gated
        if m in metrics and m in baseline
    )
    if not comparisons:
        why = "; ".join(unusable) or f"the baseline has none of the gated metrics {list(gated)}"
        return Verdict("new", (), f"{case_id}: nothing to compare ({why}); rerun with --update-baselines")
    comparisons = _cpu_evidence_all(
        comparisons,
        trials,
        baseline_trials,
        lambda tol: compare_trials(CPU_METRIC, trials[CPU_METRIC], baseline_trials[CPU_METRIC], tol, alpha),
        alpha,
    )
    if runner_change is not None and abs(runner_change) > PROBE_NOISE:
        comparisons = tuple(_probe_note(c, runner_change, raw) for c in comparisons)
    verdict = _combine(case_id, comparisons, "baseline")
    if unusable:  # a metric left out must never pass unmentioned
        note = f"{case_id}: not compared: {'; '.join(unusable)}"
        verdict = replace(verdict, message=f"{verdict.message}\n{note}" if verdict.message else note)
    return verdict


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _finite_values(values: dict[str, Any]) -> dict[str, float]:
    """The metrics that are finite numbers (a NaN, an infinity or a null can be neither better nor worse)."""
    return {k: float(v) for k, v in values.items() if _is_finite(v)}


def _finite_series(series: dict[str, Any]) -> dict[str, list[float]]:
    """Per-trial values without the non-finite ones; a series left empty is dropped."""
    out = {}
    for name, values in series.items():
        kept = [float(v) for v in values if _is_finite(v)] if isinstance(values, (list, tuple)) else []
        if kept:
            out[name] = kept
    return out


def _finite_pairs(
    reference: dict[str, list[float]], candidate: dict[str, list[float]]
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """A/B: per metric, the pairs whose two values are both finite (a NaN drops its pair, never shifts the others)."""
    ref_out: dict[str, list[float]] = {}
    cand_out: dict[str, list[float]] = {}
    for name in set(reference) & set(candidate):
        a, b = reference[name] or [], candidate[name] or []
        if len(a) != len(b):
            continue
        kept = [(float(x), float(y)) for x, y in zip(a, b, strict=True) if _is_finite(x) and _is_finite(y)]
        if kept:
            ref_out[name], cand_out[name] = [x for x, _ in kept], [y for _, y in kept]
    return ref_out, cand_out


def _unusable(gated: tuple[str, ...], metrics: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    """Why each gated metric present on both sides cannot be compared (a side holds NaN, an infinity or null)."""
    out = []
    for m in gated:
        if m not in metrics or m not in baseline:
            continue
        values = (("this run", metrics[m]), ("baseline", baseline[m]))
        sides = [f"{side} {value!r}" for side, value in values if not _is_finite(value)]
        if sides:
            label = METRICS[m].label if m in METRICS else m
            out.append(f"{label} is not a finite number ({', '.join(sides)})")
    return out


def judge_build(
    case_id: str, metrics: dict[str, float], baseline: dict[str, float] | None, tolerance: dict[str, float]
) -> Verdict:
    """``--build-only``: the build metrics of one build against the baseline's, by their tolerances alone.

    Engine size is deterministic for one builder and model. Build time is one sample a side, judged by its own
    tolerance (:data:`BUILD_TIME_TOLERANCE` unless the suite sets ``build_time``). Both sides are times of real
    builds: an engine served from the cache carries the build time of the build that made it."""
    if baseline is None:
        return Verdict("new", (), f"{case_id}: no baseline yet; run with --update-baselines to record one")
    default = tolerance.get("default", 0.10)
    allowed = {**tolerance, "build_time_ms": tolerance.get("build_time_ms", max(BUILD_TIME_TOLERANCE, default))}
    metrics, baseline = _finite_values(metrics), _finite_values(baseline)
    comparisons = tuple(
        compare_trials(m, [metrics[m]], [baseline[m]], tolerance_for(m, allowed), deterministic=True)
        for m in ("build_time_ms", "engine_bytes")
        if m in metrics and baseline.get(m)
    )
    if not comparisons:
        return Verdict("new", (), f"{case_id}: the baseline has no build metrics; run with --update-baselines")
    return _combine(case_id, comparisons, "baseline")


def _at_baseline_speed(
    trials: dict[str, list[float]], baseline_trials: dict[str, list[float]]
) -> tuple[dict[str, list[float]], dict[str, list[float]], float | None]:
    """CPU backends: both sides' per-trial values at the baseline's runner speed, and how much slower (+) or faster
    (-) the runner was now than for the baseline; unchanged values and None without probe readings on both sides.

    A host can slow a virtual machine down for seconds with no trace inside it (harness.measure.probe): CPU share and
    CPU
    time per inference then move with the wall time, and only a workload of fixed cost shows it. Each trial's times
    are divided by its own probe reading (over the baseline's median reading), its rates multiplied, so a change the
    runner made is taken out of both sides before the tests, while a slower model or ``--simulate-slowdown`` (the
    probe runs outside the case) keeps its full size."""
    probe, base_probe = trials.get(PROBE), baseline_trials.get(PROBE)
    if not probe or not base_probe or min(*probe, *base_probe) <= 0 or not np.isfinite([*probe, *base_probe]).all():
        return trials, baseline_trials, None
    reference = float(np.median(base_probe))

    def scaled(values: dict[str, list[float]], readings: list[float]) -> dict[str, list[float]]:
        out = dict(values)
        for name, series in values.items():
            if len(series) != len(readings):
                continue
            if name in TIME_METRICS:
                out[name] = [v * reference / r for v, r in zip(series, readings, strict=True)]
            elif name in RATE_METRICS:
                out[name] = [v * r / reference for v, r in zip(series, readings, strict=True)]
        return out

    return scaled(trials, probe), scaled(baseline_trials, base_probe), float(np.median(probe)) / reference - 1


def _probe_note(c: Comparison, runner_change: float, raw: dict[str, list[float]]) -> Comparison:
    """Say that (and by how much) the comparison was corrected for the runner's speed, with the measured value."""
    if c.metric in DETERMINISTIC:
        return c
    pace = "slower" if runner_change > 0 else "faster"
    measured = f"; measured {format_value(c.metric, float(np.median(raw[c.metric])))}" if raw.get(c.metric) else ""
    note = f"at the baseline's runner speed: the runner ran {abs(runner_change):.1%} {pace} (speed probe){measured}"
    return replace(c, note=f"{c.note}; {note}" if c.note else note)


def _cpu_evidence_all(
    comparisons: tuple[Comparison, ...],
    own: dict[str, list[float]],
    other: dict[str, list[float]],
    cpu_comparison: Callable[[float], Comparison],
    alpha: float,
) -> tuple[Comparison, ...]:
    """:func:`_with_cpu_evidence` on every comparison, when both sides recorded CPU time (CPU backends); ``own`` is
    the side being judged (current run, or the A/B candidate), ``other`` what it is judged against."""
    if not (own.get(CPU_METRIC) and other.get(CPU_METRIC)):
        return comparisons
    shares = (own.get(CPU_SHARE) or [], other.get(CPU_SHARE) or [])
    neighbours = (own.get(NEIGHBOURS) or [], other.get(NEIGHBOURS) or [])
    return tuple(_with_cpu_evidence(c, cpu_comparison, shares, neighbours, alpha) for c in comparisons)


def _with_cpu_evidence(
    c: Comparison,
    cpu_comparison: Callable[[float], Comparison],
    shares: tuple[Sequence[float], Sequence[float]],
    neighbours: tuple[Sequence[float], Sequence[float]],
    alpha: float,
) -> Comparison:
    """CPU backends: use the process's CPU time per inference as the evidence that tells the code from the runner.

    Slower code needs more CPU time; a busy neighbour takes the CPU away and stretches wall-clock time instead. When
    either side was contended (its median CPU share below :data:`CONTENDED` x the best trial's, or other processes
    using :data:`NEIGHBOUR_DELTA` cores more on one side than on the other), the wall-clock change says nothing about
    the code, so the verdict is the CPU-time comparison's (same test). Contention inflates CPU time a little too
    (shared caches, memory bandwidth, SMT siblings): when the more contended side is the slower one, the tolerance is
    widened by :data:`CONTENTION_SLOPE` x the CPU share lost plus :data:`NEIGHBOUR_SLOPE` x the extra neighbour
    cores; a CPU-time change beyond the tolerance but within that allowance is ``ambiguous``.
    Otherwise the wall-clock verdict stands only if CPU time moved the same way (by half the tolerance,
    significantly); if not, it is ``ambiguous``. ``cpu_comparison(tolerance)`` compares the CPU times (two samples
    against a baseline, or pairs in A/B); ``shares`` and ``neighbours`` are (current side, other side) per-trial CPU
    shares and neighbour cores.
    """
    if c.metric in DETERMINISTIC:
        return c
    cpu = cpu_comparison(c.tolerance)
    p_text = f", {format_p_value(cpu.p_value)}" if cpu.p_value is not None else ""
    (own_shares, base_shares), (others, base_others) = shares, neighbours
    if own_shares and base_shares:
        best = max(*own_shares, *base_shares)
        current, baseline = float(np.median(own_shares)), float(np.median(base_shares))
        busy = float(np.median(others)) if others else 0.0
        base_busy = float(np.median(base_others)) if base_others else 0.0
        share_contended = min(current, baseline) < CONTENDED * best
        neighbour_contended = bool(others and base_others) and abs(busy - base_busy) >= NEIGHBOUR_DELTA
        if share_contended or neighbour_contended:
            # Allow for what contention adds to CPU time, only when the more contended side is the one that looks
            # slower; the other way round the bias works against the verdict.
            slower_is_current = cpu.change > 0
            allowance = 0.0
            if (current < baseline) == slower_is_current:
                allowance += CONTENTION_SLOPE * abs(current - baseline) / best
            if (busy > base_busy) == slower_is_current:
                allowance += NEIGHBOUR_SLOPE * abs(busy - base_busy)
            verdict = cpu.verdict
            if verdict in ("regressed", "improved") and abs(cpu.change) <= c.tolerance + allowance:
                verdict = "ambiguous"
            note = (
                f"runner contended: CPU share {current:.0%} vs {baseline:.0%}, other processes {busy:.1f} vs "
                f"{base_busy:.1f} cores; judged on CPU time per inference, {cpu.change:+.1%}{p_text}"
            )
            return replace(c, verdict=verdict, note=note)
    if c.verdict not in ("regressed", "improved"):
        return c
    slower = c.verdict == "regressed"  # for throughput too: the direction is in the verdict, not in the sign
    moved = cpu.change > c.tolerance / 2 if slower else cpu.change < -c.tolerance / 2
    if moved and cpu.p_value is not None and cpu.p_value <= alpha:
        return c
    note = f"CPU time per inference moved {cpu.change:+.1%}{p_text}: the runner's load changed, not the code"
    return replace(c, verdict="ambiguous", note=note)


def _combine(case_id: str, comparisons: tuple[Comparison, ...], against: str) -> Verdict:
    for verdict in ("regressed", "ambiguous", "improved"):
        hits = [c for c in comparisons if c.verdict == verdict]
        if hits:
            lines = [c.describe(case_id, against) for c in hits]
            if verdict == "ambiguous":
                lines = [line + " [ambiguous: cannot be told from noise]" for line in lines]
            return Verdict(verdict, comparisons, "\n".join(lines))
    return Verdict("unchanged", comparisons, "")


def confirm(first: Verdict, second: Verdict) -> Verdict:
    """Combine a verdict that looked regressed with the verdict of a second, independent measurement."""
    if first.verdict != "regressed":
        return first
    if second.verdict == "regressed":
        return replace(second, message=second.message + " (confirmed by a second measurement)", first=first)
    summary = second.message.splitlines()[0] if second.message else f"{second.verdict} when measured again"
    return Verdict(
        "ambiguous",
        second.comparisons,
        first.message + f"\n  not confirmed by a second measurement ({summary}) [ambiguous]",
        first=first,
    )


# -- paired samples: A/B in one job ---------------------------------------------------------------------------
def paired_test(reference: Sequence[float], candidate: Sequence[float], alpha: float = ALPHA) -> dict[str, float]:
    """Wilcoxon signed-rank on log(candidate / reference) of each pair: one-sided p both ways, the median ratio and
    Tukey's (1 - 2 alpha) Walsh-average interval of the relative change."""
    from scipy.stats import wilcoxon

    r = np.log(np.asarray(candidate, dtype=np.float64)) - np.log(np.asarray(reference, dtype=np.float64))
    n = len(r)
    if np.allclose(r, 0.0):
        return {"p_greater": 1.0, "p_less": 1.0, "ci_low": 0.0, "ci_high": 0.0, "change": 0.0}
    greater = float(wilcoxon(r, alternative="greater").pvalue)
    less = float(wilcoxon(r, alternative="less").pvalue)
    i, j = np.triu_indices(n)
    walsh = (r[i] + r[j]) / 2
    k = _critical_rank(_signed_rank_counts(n), alpha) if n <= 60 else 0
    low, high = _interval(walsh, k)
    return {
        "p_greater": greater,
        "p_less": less,
        "ci_low": _rel(low),
        "ci_high": _rel(high),
        "change": _rel(float(np.median(r))),
    }


def compare_pairs(
    metric: str, reference: Sequence[float], candidate: Sequence[float], tolerance: float, alpha: float = ALPHA
) -> Comparison:
    """One metric in A/B: per-pair values of the candidate against those of the reference (same order)."""
    a, b = list(reference), list(candidate)
    higher_is_better = METRICS[metric].higher_is_better if metric in METRICS else False
    current, base = float(np.median(b)), float(np.median(a))
    if len(a) < MIN_TRIALS + 1:
        change = current / base - 1
        verdict = "ambiguous" if abs(change) > tolerance else "unchanged"
        return Comparison(
            metric, current, base, change, tolerance, verdict, trials=(len(a), len(a)), method="wilcoxon-paired"
        )
    test = paired_test(a, b, alpha)
    change = test["change"]
    worse = -change if higher_is_better else change
    verdict, p_value = _tested_verdict(worse, change, tolerance, test, higher_is_better, alpha)
    return Comparison(
        metric,
        current,
        base,
        change,
        tolerance,
        verdict,
        test["ci_low"],
        test["ci_high"],
        p_value,
        (len(a), len(a)),
        "wilcoxon-paired",
    )


def judge_paired(
    case_id: str,
    reference: dict[str, list[float]],
    candidate: dict[str, list[float]],
    tolerance: dict[str, float],
    gated: tuple[str, ...] = GATED_METRICS,
    alpha: float = ALPHA,
    labels: tuple[str, str] = ("reference", "candidate"),
) -> Verdict:
    """A/B: ``candidate`` against ``reference``, metric -> per-trial values measured in interleaved pairs. On CPU
    backends (``cpu_ms`` on both sides) the CPU time per inference of the pairs is the evidence, as in :func:`judge`:
    trials of a pair are consecutive, not simultaneous, so a neighbour can still load one and not the other."""
    reference, candidate = _finite_pairs(reference, candidate)
    comparisons = tuple(
        compare_pairs(m, reference[m], candidate[m], tolerance_for(m, tolerance), alpha)
        for m in gated
        if reference.get(m) and candidate.get(m) and len(reference[m]) == len(candidate[m])
    )
    if not comparisons:
        return Verdict("new", (), f"{case_id}: no gated metric was measured for both {labels[0]} and {labels[1]}")
    comparisons = _cpu_evidence_all(
        comparisons,
        candidate,
        reference,
        lambda tol: compare_pairs(CPU_METRIC, reference[CPU_METRIC], candidate[CPU_METRIC], tol, alpha),
        alpha,
    )
    return _combine(f"{case_id} ({labels[1]} vs {labels[0]})", comparisons, labels[0])


# -- the naive rule, kept only as the reference figure that `harness calibrate` prints next to the gate's ----------
def naive_regressed(current_median: float, baseline_median: float, threshold: float = NAIVE_THRESHOLD) -> bool:
    """pytest-benchmark's ``--benchmark-compare-fail=median:5%``: one median against one saved median."""
    return (current_median - baseline_median) / baseline_median > threshold
